using CloudDelivery.Azure.Events;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>
/// The outbox sweep on a timer: events whose writer crashed before publishing, or that a full dispatcher
/// left in the outbox, are adopted by the worker's dispatcher (a hosted service, see Program.cs). Nothing
/// happens when no sink is configured.
/// </summary>
public sealed class EventFunctions(EventDispatcher dispatcher)
{
    /// <summary>Every five minutes, as Events:SweepInterval's default (a timer's schedule is fixed at deployment).</summary>
    [Function(nameof(SweepEventOutbox))]
    public Task<int> SweepEventOutbox([TimerTrigger("0 */5 * * * *")] TimerInfo timer, CancellationToken cancellationToken) =>
        dispatcher.SweepAsync(cancellationToken);
}
