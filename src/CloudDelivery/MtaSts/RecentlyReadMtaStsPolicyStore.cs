using System.Collections.Concurrent;
using CloudDelivery.Addressing;

namespace CloudDelivery.MtaSts;

/// <summary>
/// A shared policy store (Table Storage in the hosts) with this process's recent reads in front of it.
/// Every delivery run asks the store for its domain's entry, and most domains have none (no MTA-STS): a
/// storage read per run for an answer that changes once in days. An answer, found or not, is kept for
/// <see cref="Lifetime"/>; this process's own writes go through and update it at once. What another
/// process (the refresher on another instance, <c>clouddelivery policy refresh</c>) writes is seen here
/// within <see cref="Lifetime"/>: a policy is valid for its max_age (RFC 8461 §3.2, typically days), so a
/// minute's delay changes nothing a receiver can notice.
/// </summary>
public sealed class RecentlyReadMtaStsPolicyStore(IMtaStsPolicyStore shared, TimeProvider? time = null, TimeSpan? lifetime = null) : IMtaStsPolicyStore
{
    /// <summary>Domains remembered at most; beyond, the memory starts over (costing one read per domain seen again).</summary>
    public const int MaxRemembered = 100_000;

    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromMinutes(1);

    private readonly TimeProvider clock = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Remembered> recent = new(StringComparer.Ordinal);

    /// <summary>How long an answer read from <see cref="Shared"/> is used without reading again.</summary>
    public TimeSpan Lifetime { get; } = lifetime ?? DefaultLifetime;

    public IMtaStsPolicyStore Shared => shared;

    private sealed record Remembered(CachedMtaStsPolicy? Entry, DateTimeOffset ReadAt);

    public async Task<CachedMtaStsPolicy?> GetAsync(Domain domain, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (recent.TryGetValue(domain.Ascii, out var remembered) && now - remembered.ReadAt < Lifetime)
        {
            return remembered.Entry;
        }
        var entry = await shared.GetAsync(domain, cancellationToken);
        Remember(domain.Ascii, entry, now);
        return entry;
    }

    public async Task PutAsync(CachedMtaStsPolicy policy, CancellationToken cancellationToken)
    {
        await shared.PutAsync(policy, cancellationToken);
        Remember(policy.Domain, policy, clock.GetUtcNow());
    }

    public async Task TouchAsync(string domain, DateTimeOffset lastUsed, CancellationToken cancellationToken)
    {
        await shared.TouchAsync(domain, lastUsed, cancellationToken);
        // Only the remembered copy's LastUsed changes; whether an entry exists is what the store said last.
        if (recent.TryGetValue(domain, out var remembered) && remembered.Entry is { } entry)
        {
            recent.TryUpdate(domain, remembered with { Entry = entry with { LastUsed = lastUsed } }, remembered);
        }
    }

    /// <summary>From the shared store: listings are for the refresher and operators, who want what is stored.</summary>
    public IAsyncEnumerable<CachedMtaStsPolicy> ListAsync(CancellationToken cancellationToken) => shared.ListAsync(cancellationToken);

    public async Task DeleteAsync(string domain, CancellationToken cancellationToken)
    {
        await shared.DeleteAsync(domain, cancellationToken);
        recent.TryRemove(domain, out _);
    }

    private void Remember(string domain, CachedMtaStsPolicy? entry, DateTimeOffset readAt)
    {
        if (recent.Count >= MaxRemembered)
        {
            recent.Clear();
        }
        recent[domain] = new Remembered(entry, readAt);
    }
}
