using CloudDelivery.Addressing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.MtaSts;

/// <summary>Settings of the policy refresher. Bound from "CloudDelivery:MtaSts".</summary>
public sealed class MtaStsRefreshOptions
{
    /// <summary>How often the refresher runs (the Functions timer's schedule says the same: every 6 hours).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(6);

    /// <summary>Entries not used for longer than this are deleted (mox: 180 days).</summary>
    public TimeSpan UnusedLifetime { get; set; } = TimeSpan.FromDays(180);

    /// <summary>
    /// A run refreshes policies that expire before the next run plus this margin, so a policy whose
    /// refresh fails once still gets another try before it expires.
    /// </summary>
    public TimeSpan Margin { get; set; } = TimeSpan.FromHours(6);

    /// <summary>
    /// Longest time one run spreads its fetches over. It stays well within the Functions timeout
    /// (host.json functionTimeout, 30 minutes); zero fetches back to back.
    /// </summary>
    public TimeSpan Spread { get; set; } = TimeSpan.FromMinutes(20);
}

/// <summary>What one refresher run did.</summary>
/// <param name="Entries">Entries in the store.</param>
/// <param name="Deleted">Entries deleted for being unused.</param>
/// <param name="Refreshed">Policies fetched and stored.</param>
/// <param name="Failed">Refreshes that failed (recorded as the entry's LastError).</param>
public sealed record MtaStsRefreshSummary(int Entries, int Deleted, int Refreshed, int Failed);

/// <summary>
/// Keeps the policy cache fresh, after mox's mtastsdb refresher. RFC 8461 §10.2: senders SHOULD refresh
/// cached policies before they expire, so a policy host that is blocked (or down) at the moment a message
/// is sent does not make the domain look like it has no policy; and SHOULD log refresh errors. Entries of
/// domains nobody sent to for <see cref="MtaStsRefreshOptions.UnusedLifetime"/> are deleted instead, and
/// refreshes are spread over the run so a large cache does not make a burst of fetches.
/// </summary>
public sealed class MtaStsPolicyRefresher
{
    private readonly MtaStsPolicyProvider provider;
    private readonly MtaStsRefreshOptions options;
    private readonly TimeProvider time;
    private readonly ILogger log;

    public MtaStsPolicyRefresher(MtaStsPolicyProvider provider, MtaStsRefreshOptions options, TimeProvider? time = null, ILogger<MtaStsPolicyRefresher>? logger = null)
    {
        this.provider = provider;
        this.options = options;
        this.time = time ?? TimeProvider.System;
        log = (ILogger?)logger ?? NullLogger.Instance;
    }

    public MtaStsRefreshOptions Options => options;

    /// <summary>
    /// One run: deletes unused entries, and refreshes used ones that expire within <paramref name="period"/>
    /// plus the margin, and backoff entries, spread over at most <see cref="MtaStsRefreshOptions.Spread"/>.
    /// Failures are logged and recorded, never thrown (only cancellation ends a run early).
    /// </summary>
    /// <param name="period">Time until the next run.</param>
    /// <param name="cancellationToken">Ends the run (between or during fetches).</param>
    public async Task<MtaStsRefreshSummary> RefreshAsync(TimeSpan period, CancellationToken cancellationToken)
    {
        var store = provider.Store;
        var start = time.GetUtcNow();
        var entries = 0;
        var deleted = 0;
        var due = new List<CachedMtaStsPolicy>();
        try
        {
            await foreach (var entry in store.ListAsync(cancellationToken))
            {
                entries++;
                if (start - entry.LastUsed > options.UnusedLifetime)
                {
                    // A delivery that touches the entry right now loses it; it is a cache, the next lookup fetches.
                    await store.DeleteAsync(entry.Domain, cancellationToken);
                    deleted++;
                    log.LogInformation("MTA-STS policy of {Domain} deleted: unused since {LastUsed:u}", entry.Domain, entry.LastUsed);
                }
                else if (entry.Backoff || entry.ValidUntil <= start + period + options.Margin)
                {
                    due.Add(entry);
                }
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            log.LogError(e, "Listing cached MTA-STS policies failed");
            return new MtaStsRefreshSummary(entries, deleted, 0, 0);
        }

        // A random order and a random moment within each slot: even on average, never in lockstep with
        // other senders or with the order of the table.
        var random = Random.Shared;
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(due));
        var spread = period < options.Spread ? period : options.Spread;
        var refreshed = 0;
        var failed = 0;
        for (var i = 0; i < due.Count; i++)
        {
            if (spread > TimeSpan.Zero)
            {
                var at = start + (spread * ((i + random.NextDouble()) / due.Count));
                var wait = at - time.GetUtcNow();
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, time, cancellationToken);
                }
            }
            if (await RefreshOneAsync(due[i], cancellationToken))
            {
                refreshed++;
            }
            else
            {
                failed++;
            }
        }
        log.LogInformation("MTA-STS refresh: {Entries} cached, {Deleted} deleted, {Refreshed} refreshed, {Failed} failed", entries, deleted, refreshed, failed);
        return new MtaStsRefreshSummary(entries, deleted, refreshed, failed);
    }

    private async Task<bool> RefreshOneAsync(CachedMtaStsPolicy entry, CancellationToken cancellationToken)
    {
        try
        {
            var result = await provider.RefreshAsync(Domain.Parse(entry.Domain), cancellationToken);
            if (result.Policy is not null)
            {
                return true;
            }
            // RFC 8461 §10.2: refresh errors are logged, so operators see a policy about to lapse.
            log.LogWarning("Refreshing the MTA-STS policy of {Domain} failed ({Reason}): {Error}; cached policy valid until {ValidUntil:u}", entry.Domain, result.FailureReasonCode, result.Error, entry.ValidUntil);
            return false;
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            log.LogError(e, "Refreshing the MTA-STS policy of {Domain} failed", entry.Domain);
            try
            {
                await provider.Store.PutAsync(entry with { LastError = e.Message }, cancellationToken);
            }
            catch (Exception again) when (again is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                log.LogError(again, "Recording the refresh failure of {Domain} failed", entry.Domain);
            }
            return false;
        }
    }
}
