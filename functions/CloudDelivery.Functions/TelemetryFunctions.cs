using CloudDelivery.Azure.Telemetry;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>Telemetry that needs a schedule: the snapshot behind the queue gauges.</summary>
public sealed class TelemetryFunctions(QueueSampler sampler)
{
    /// <summary>
    /// Refreshes the queue gauges' snapshot (one bounded storage pass) every five minutes, on the minutes the
    /// sweeps run too (see <see cref="QueueSampler.Schedule"/>); the worker's meter provider exports the
    /// gauges from it each minute in between.
    /// </summary>
    [Function(nameof(SampleQueue))]
    public Task SampleQueue([TimerTrigger(QueueSampler.Schedule)] TimerInfo timer, CancellationToken cancellationToken) =>
        sampler.SampleAsync(cancellationToken);
}
