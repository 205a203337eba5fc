using System.Text.Json;
using CloudDelivery.Azure.Events;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// An in-process sink that records every batch it accepted, and refuses (as a receiver answering 503
/// would) while told to: the first <see cref="RefuseFirst"/> sends, or every send while <see cref="Down"/>.
/// </summary>
public sealed class RecordingSink(string name, int maxBatchSize = 100) : IEventSink
{
    private readonly Lock gate = new();
    private readonly List<IReadOnlyList<OutboxEvent>> accepted = [];
    private int sends;

    public string Name => name;

    public int MaxBatchSize => maxBatchSize;

    /// <summary>Sends refused before the sink starts accepting.</summary>
    public int RefuseFirst { get; set; }

    /// <summary>While true every send is refused.</summary>
    public bool Down { get; set; }

    /// <summary>Which events the sink takes; all by default.</summary>
    public Func<OutboxEvent, bool> Filter { get; set; } = _ => true;

    public int Refused { get; private set; }

    public bool Wants(OutboxEvent outboxEvent) => Filter(outboxEvent);

    public Task SendAsync(IReadOnlyList<OutboxEvent> batch, CancellationToken cancellationToken)
    {
        lock (gate)
        {
            sends++;
            if (Down || sends <= RefuseFirst)
            {
                Refused++;
                throw new EventSinkException(name, 503, "refused by the test");
            }
            accepted.Add([.. batch]);
        }
        return Task.CompletedTask;
    }

    public IReadOnlyList<IReadOnlyList<OutboxEvent>> Batches
    {
        get
        {
            lock (gate)
            {
                return [.. accepted];
            }
        }
    }

    /// <summary>Every accepted event, parsed, in the order received.</summary>
    public List<JsonElement> Events => Batches.SelectMany(b => b).Select(e => JsonDocument.Parse(e.Json).RootElement.Clone()).ToList();
}
