using System.Collections.Concurrent;
using CloudDelivery.Addressing;

namespace CloudDelivery.MtaSts;

/// <summary>
/// A cached policy of a recipient domain, as the store keeps it. A record with <see cref="Backoff"/> set
/// remembers a recent failed fetch so that not every message triggers another one.
/// </summary>
public sealed record CachedMtaStsPolicy
{
    /// <summary>The recipient domain, A-labels.</summary>
    public required string Domain { get; init; }

    /// <summary>The id of the TXT record the policy was fetched under.</summary>
    public string RecordId { get; init; } = string.Empty;

    /// <summary>The policy text as served, or empty for a backoff entry.</summary>
    public string PolicyText { get; init; } = string.Empty;

    public DateTimeOffset FetchedAt { get; init; }

    /// <summary>Until when the policy may be used (fetched-at + max_age, RFC 8461 §5.1).</summary>
    public DateTimeOffset ValidUntil { get; init; }

    public DateTimeOffset LastUsed { get; init; }

    /// <summary>The last fetch or lookup failure, for operators.</summary>
    public string? LastError { get; init; }

    /// <summary>A placeholder after a failed fetch: no policy, do not fetch again before <see cref="ValidUntil"/>.</summary>
    public bool Backoff { get; init; }

    /// <summary>The parsed policy, or null for a backoff entry.</summary>
    public MtaStsPolicy? Policy => PolicyText.Length == 0 ? null : MtaStsPolicy.Parse(PolicyText);
}

/// <summary>
/// Where cached MTA-STS policies live. The engine needs get, put and touch; the refresh timer and the CLI
/// also list and delete. Several workers share one store: writes are upserts, the last writer wins (it is a
/// cache; every writer writes what it just fetched), and no write fails because another got there first.
/// </summary>
public interface IMtaStsPolicyStore
{
    /// <summary>The cached entry of <paramref name="domain"/>, expired or not, or null.</summary>
    Task<CachedMtaStsPolicy?> GetAsync(Domain domain, CancellationToken cancellationToken);

    /// <summary>Inserts or replaces the entry of its domain.</summary>
    Task PutAsync(CachedMtaStsPolicy policy, CancellationToken cancellationToken);

    /// <summary>
    /// Sets only <see cref="CachedMtaStsPolicy.LastUsed"/> of an existing entry; nothing happens when there
    /// is none. Only that field is written, so a touch never undoes a policy another worker just stored.
    /// </summary>
    Task TouchAsync(string domain, DateTimeOffset lastUsed, CancellationToken cancellationToken);

    /// <summary>Every entry, in no particular order.</summary>
    IAsyncEnumerable<CachedMtaStsPolicy> ListAsync(CancellationToken cancellationToken);

    /// <summary>Removes the entry of <paramref name="domain"/>, if there is one.</summary>
    Task DeleteAsync(string domain, CancellationToken cancellationToken);
}

/// <summary>A process-local policy cache, for the CLI, tests and single-instance hosts.</summary>
public sealed class InMemoryMtaStsPolicyStore : IMtaStsPolicyStore
{
    private readonly ConcurrentDictionary<string, CachedMtaStsPolicy> entries = new(StringComparer.Ordinal);

    public Task<CachedMtaStsPolicy?> GetAsync(Domain domain, CancellationToken cancellationToken) =>
        Task.FromResult(entries.GetValueOrDefault(domain.Ascii));

    public Task PutAsync(CachedMtaStsPolicy policy, CancellationToken cancellationToken)
    {
        entries[policy.Domain] = policy;
        return Task.CompletedTask;
    }

    public Task TouchAsync(string domain, DateTimeOffset lastUsed, CancellationToken cancellationToken)
    {
        // Compare-and-swap so a concurrent put is never overwritten with the older policy.
        while (entries.TryGetValue(domain, out var current) && !entries.TryUpdate(domain, current with { LastUsed = lastUsed }, current))
        {
        }
        return Task.CompletedTask;
    }

    public async IAsyncEnumerable<CachedMtaStsPolicy> ListAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var entry in entries.Values.ToArray())
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return entry;
        }
        await Task.CompletedTask;
    }

    public Task DeleteAsync(string domain, CancellationToken cancellationToken)
    {
        entries.TryRemove(domain, out _);
        return Task.CompletedTask;
    }

    /// <summary>All entries, for inspection.</summary>
    public IReadOnlyCollection<CachedMtaStsPolicy> Entries => entries.Values.ToArray();
}
