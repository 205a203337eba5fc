using CloudDelivery.MtaSts;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>The MTA-STS policy cache's timer; the work is in <see cref="MtaStsPolicyRefresher"/>.</summary>
public sealed class MtaStsFunctions(MtaStsPolicyRefresher refresher)
{
    /// <summary>
    /// Every 6 hours (keep in step with CloudDelivery:MtaSts:Interval): refreshes cached policies of used
    /// domains before they expire and deletes long-unused ones (RFC 8461 §10.2). Never throws for a domain.
    /// </summary>
    [Function(nameof(RefreshMtaStsPolicies))]
    public Task RefreshMtaStsPolicies([TimerTrigger("0 17 */6 * * *")] TimerInfo timer, CancellationToken cancellationToken) =>
        refresher.RefreshAsync(refresher.Options.Interval, cancellationToken);
}
