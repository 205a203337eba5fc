namespace CloudDelivery.Azure.Events;

/// <summary>
/// One recipient event on its way to the sinks: the CloudEvents 1.0 structured JSON of one event (RFC-style
/// "application/cloudevents+json", what Event Grid and webhooks receive), its id (receivers dedupe on it),
/// and the sender domain webhooks may be routed by.
/// </summary>
/// <param name="Id">The CloudEvent id: the same for every publication of the same transition.</param>
/// <param name="SenderDomain">The envelope sender's domain; empty for the null sender.</param>
/// <param name="Json">The event as CloudEvents structured JSON (one object).</param>
public sealed record OutboxEvent(string Id, string SenderDomain, ReadOnlyMemory<byte> Json);

/// <summary>
/// Where events go: an Event Grid topic or an HTTPS webhook. The dispatcher hands each sink batches of
/// the events it wants and retries a batch that fails; a sink never sees a delivery decision.
/// </summary>
public interface IEventSink
{
    /// <summary>A stable name for logs, metrics and parked events ("eventgrid", "webhook:orders").</summary>
    string Name { get; }

    /// <summary>Most events one <see cref="SendAsync"/> takes.</summary>
    int MaxBatchSize { get; }

    /// <summary>Whether this sink receives <paramref name="outboxEvent"/> (a webhook may take only some sender domains).</summary>
    bool Wants(OutboxEvent outboxEvent);

    /// <summary>Sends one batch; returns when the receiver accepted all of it.</summary>
    /// <exception cref="EventSinkException">The receiver refused or could not be reached; the batch is retried later.</exception>
    Task SendAsync(IReadOnlyList<OutboxEvent> batch, CancellationToken cancellationToken);
}

/// <summary>A sink could not deliver a batch: the receiver's status (0 when none was reached) and why.</summary>
public sealed class EventSinkException(string sink, int status, string message, Exception? inner = null) : Exception($"{sink}: {message}", inner)
{
    public string Sink { get; } = sink;

    /// <summary>The HTTP status the receiver answered, or 0 when it was not reached (connect failure, timeout).</summary>
    public int Status { get; } = status;
}
