using System.Diagnostics.Metrics;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// The event dispatcher's instruments, on the queue's meter (<see cref="QueueMetrics.MeterName"/>, so the
/// exporters need nothing new): events published, failed sends and parked events per sink, publish latency,
/// and the events a dispatcher holds. Tag "sink" is the sink's configured name: a handful of values.
/// </summary>
public sealed class EventMetrics
{
    private Func<long>? inHand;

    public EventMetrics(QueueMetrics queue)
    {
        var meter = queue.Meter;
        Published = meter.CreateCounter<long>("clouddelivery.events.published", description: "Events a sink accepted; tag sink.");
        Failed = meter.CreateCounter<long>("clouddelivery.events.failed", description: "Batches a sink refused or could not take (retried with backoff); tag sink.");
        Parked = meter.CreateCounter<long>("clouddelivery.events.parked", description: "Events parked after a sink kept failing for Events:Retention; tag sink.");
        PublishLatency = meter.CreateHistogram<double>("clouddelivery.events.publish_latency", unit: "s", description: "From an event's outbox write to its acceptance by a sink; tag sink.");
        meter.CreateObservableGauge("clouddelivery.events.in_memory", () => inHand?.Invoke() ?? 0, description: "Events this instance's dispatcher holds (published ones until their outbox rows are deleted).");
    }

    public Counter<long> Published { get; }

    public Counter<long> Failed { get; }

    public Counter<long> Parked { get; }

    public Histogram<double> PublishLatency { get; }

    /// <summary>Where the in-memory gauge reads from (the dispatcher).</summary>
    internal void Observe(Func<long> count) => inHand = count;

    internal static KeyValuePair<string, object?> SinkTag(string sink) => new("sink", sink);
}
