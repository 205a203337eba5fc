using CloudDelivery.Azure.Queue;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>Daily clean-up of final records and bodies no recipient needs (see QueuePurger).</summary>
public sealed class PurgeFunctions(QueuePurger purger)
{
    /// <summary>03:40 UTC every day: quiet hours for most senders, away from the TLSRPT run at 00:10.</summary>
    [Function(nameof(PurgeFinalRecords))]
    public Task<PurgeResult> PurgeFinalRecords([TimerTrigger("0 40 3 * * *")] TimerInfo timer, CancellationToken cancellationToken) =>
        purger.PurgeAsync(cancellationToken);
}
