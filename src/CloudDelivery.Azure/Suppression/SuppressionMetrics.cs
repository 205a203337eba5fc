using System.Diagnostics.Metrics;
using CloudDelivery.Azure.Telemetry;

namespace CloudDelivery.Azure.Suppression;

/// <summary>
/// The suppression list's counter, on the queue's meter (<see cref="QueueMetrics.MeterName"/>, so the
/// exporters that take the queue's instruments take it too). Tags stay low-cardinality: never an address.
/// </summary>
public sealed class SuppressionMetrics
{
    public SuppressionMetrics(IMeterFactory? factory = null)
    {
        var meter = factory?.Create(QueueMetrics.MeterName) ?? new Meter(QueueMetrics.MeterName);
        Suppressions = meter.CreateCounter<long>("clouddelivery.suppressions", description: "Suppression list changes and the recipients it kept from being queued; tags action (added, blocked, removed) and reason (bad-mailbox, bad-domain, manual).");
    }

    public Counter<long> Suppressions { get; }

    public void Count(string action, string reason) =>
        Suppressions.Add(1, new KeyValuePair<string, object?>("action", action), new KeyValuePair<string, object?>("reason", reason));
}
