using System.Collections.Concurrent;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Addressing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Suppression;

/// <summary>
/// The suppression list: addresses not to queue, per sender domain or global, in
/// <see cref="Storage.OutboundStorageOptions.SuppressionsTable"/>. The check at submission never reads
/// storage: it looks in an in-memory snapshot of every live entry, loaded once at first use and then
/// refreshed by one query for the entities changed since the last refresh (every
/// <see cref="SuppressionOptions.RefreshInterval"/>, by <c>serve</c>'s loop or, when a check finds the
/// snapshot stale, by the check itself). Changes made through this instance apply to it at once; other
/// instances see them at their next refresh. Removals are tombstones so that refreshes see them; the
/// purge deletes tombstones and long-expired entries after a day.
/// </summary>
public sealed class SuppressionList(TableClient table, SuppressionOptions options, TimeProvider? time = null, ILogger<SuppressionList>? logger = null, SuppressionMetrics? metrics = null) : IDisposable
{
    /// <summary>How far back before the newest change seen a refresh looks again: writes commit out of timestamp order, and a refresh racing a local write heals at the next.</summary>
    public static readonly TimeSpan RefreshMargin = TimeSpan.FromMinutes(2);

    /// <summary>The name of serve's refresh loop in health reports.</summary>
    public const string RefreshLoopName = "suppression-refresh";

    /// <summary>How long tombstones and expired entries stay before the purge deletes them.</summary>
    public static readonly TimeSpan TombstoneLifetime = TimeSpan.FromDays(1);

    /// <summary>The columns the snapshot needs.</summary>
    private static readonly string[] SnapshotColumns = ["PartitionKey", "RowKey", "Timestamp", nameof(SuppressionEntity.Reason), nameof(SuppressionEntity.Category), nameof(SuppressionEntity.ExpiresAt), nameof(SuppressionEntity.Removed)];

    private static readonly IReadOnlyDictionary<EmailAddress, SuppressionMatch> NoneSuppressed = new Dictionary<EmailAddress, SuppressionMatch>();

    private readonly TimeProvider clock = time ?? TimeProvider.System;
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;
    private readonly SemaphoreSlim refreshing = new(1, 1);
    private volatile ConcurrentDictionary<string, LiveEntry>? entries;
    private DateTimeOffset? newestChange;
    private DateTimeOffset nextRefresh;

    public SuppressionOptions Options => options;

    public TableClient Table => table;

    public TimeProvider Time => clock;

    /// <summary>Live entries in the snapshot (0 before it is loaded).</summary>
    public int Count => entries?.Count ?? 0;

    /// <summary>
    /// The recipients of a message from <paramref name="sender"/> (null: the null sender, global scope only)
    /// that are suppressed in its sender-domain scope or globally, each with the entry that applies. Empty
    /// when the list is disabled.
    /// </summary>
    /// <exception cref="RequestFailedException">The snapshot was never loaded and storage cannot be read.</exception>
    public async Task<IReadOnlyDictionary<EmailAddress, SuppressionMatch>> CheckAsync(EmailAddress? sender, IEnumerable<EmailAddress> recipients, CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            return NoneSuppressed;
        }
        var snapshot = await CurrentAsync(cancellationToken);
        if (snapshot.IsEmpty)
        {
            return NoneSuppressed;
        }
        var now = clock.GetUtcNow();
        var senderScope = sender is null ? null : SuppressionKeys.ScopeOf(sender);
        Dictionary<EmailAddress, SuppressionMatch>? suppressed = null;
        foreach (var recipient in recipients)
        {
            var row = SuppressionKeys.RowKeyOf(recipient);
            foreach (var scope in senderScope is null ? [SuppressionKeys.Global] : new[] { senderScope, SuppressionKeys.Global })
            {
                if (snapshot.TryGetValue(KeyOf(scope, row), out var entry) && entry.IsLive(now))
                {
                    (suppressed ??= [])[recipient] = new SuppressionMatch(scope, entry.Reason, entry.Category);
                    metrics?.Count("blocked", entry.Category);
                    break;
                }
            }
        }
        return suppressed ?? NoneSuppressed;
    }

    /// <summary>
    /// Takes the changes made since the last refresh (all entries on the first) into the snapshot. Does
    /// nothing when the list is disabled. On failure the snapshot stays as it was.
    /// </summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            return;
        }
        await refreshing.WaitAsync(cancellationToken);
        try
        {
            await RefreshHeldAsync(cancellationToken);
        }
        finally
        {
            refreshing.Release();
        }
    }

    private async Task RefreshHeldAsync(CancellationToken cancellationToken)
    {
        var current = entries;
        var target = current ?? new ConcurrentDictionary<string, LiveEntry>(StringComparer.Ordinal);
        // Timestamp is the service's own time of each entity's last change: the watermark compares times of
        // one clock, whatever this host's. The filter is a scan, but costs one transaction per page returned.
        var filter = current is null || newestChange is not { } newest ? null : TableClient.CreateQueryFilter($"Timestamp ge {newest - RefreshMargin}");
        var seen = newestChange;
        var now = clock.GetUtcNow();
        try
        {
            await foreach (var entity in table.QueryAsync<SuppressionEntity>(filter, maxPerPage: 1000, select: SnapshotColumns, cancellationToken: cancellationToken))
            {
                Apply(target, entity, now);
                if (entity.Timestamp > seen || seen is null)
                {
                    seen = entity.Timestamp;
                }
            }
        }
        catch (RequestFailedException e) when (e.Status == 404 && current is null)
        {
            // No table (a host that never ran EnsureCreatedAsync): nothing is suppressed, and mail flows.
            // Later refreshes find entries once the table exists.
            log.LogWarning("The suppression table {Table} does not exist; nothing is suppressed until it does", table.Name);
        }
        newestChange = seen;
        nextRefresh = clock.GetUtcNow() + options.RefreshInterval;
        entries = target;
    }

    /// <summary>The snapshot, loaded if it never was, refreshed first if it is stale (a failed refresh is logged and the old one used).</summary>
    private async Task<ConcurrentDictionary<string, LiveEntry>> CurrentAsync(CancellationToken cancellationToken)
    {
        var snapshot = entries;
        if (snapshot is null)
        {
            await RefreshAsync(cancellationToken);
            return entries ?? throw new InvalidOperationException("the suppression list was not loaded");
        }
        if (clock.GetUtcNow() < nextRefresh || !await refreshing.WaitAsync(0, cancellationToken))
        {
            // Fresh, or another caller is refreshing it: this one uses what there is.
            return snapshot;
        }
        try
        {
            await RefreshHeldAsync(cancellationToken);
        }
        catch (Exception e) when (Submission.SubmissionEndpoint.IsStorageTrouble(e, cancellationToken))
        {
            // Keep checking against the last snapshot; try again after one interval rather than on every message.
            nextRefresh = clock.GetUtcNow() + options.RefreshInterval;
            log.LogWarning(e, "Refreshing the suppression list failed; checking against the snapshot of {Count} entries", snapshot.Count);
        }
        finally
        {
            refreshing.Release();
        }
        return entries ?? snapshot;
    }

    /// <summary>
    /// Adds (or replaces) the entry for <paramref name="address"/> in <paramref name="scope"/>: one upsert.
    /// </summary>
    public async Task<SuppressionEntity> AddAsync(EmailAddress address, string scope, string reason, string category, string source, string? sourceMessageId, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        var entity = new SuppressionEntity
        {
            PartitionKey = scope,
            RowKey = SuppressionKeys.RowKeyOf(address),
            Address = address.ToString(),
            Reason = SuppressionKeys.BoundReason(reason),
            Category = category,
            Source = source,
            SourceMessageId = sourceMessageId ?? string.Empty,
            CreatedAt = clock.GetUtcNow(),
            ExpiresAt = expiresAt,
        };
        await table.UpsertEntityAsync(entity, TableUpdateMode.Replace, cancellationToken);
        if (entries is { } snapshot)
        {
            Apply(snapshot, entity, clock.GetUtcNow());
        }
        metrics?.Count("added", category);
        return entity;
    }

    /// <summary>The live entry for <paramref name="address"/> in <paramref name="scope"/>, from storage (one point read); null when there is none.</summary>
    public async Task<SuppressionEntity?> FindAsync(EmailAddress address, string scope, CancellationToken cancellationToken)
    {
        var response = await table.GetEntityIfExistsAsync<SuppressionEntity>(scope, SuppressionKeys.RowKeyOf(address), cancellationToken: cancellationToken);
        return response.HasValue && response.Value!.IsLive(clock.GetUtcNow()) ? response.Value : null;
    }

    /// <summary>Removes the live entry (a tombstone other instances' refreshes see); false when there was none.</summary>
    public async Task<bool> RemoveAsync(EmailAddress address, string scope, CancellationToken cancellationToken)
    {
        var entity = await FindAsync(address, scope, cancellationToken);
        if (entity is null)
        {
            return false;
        }
        entity.Removed = true;
        try
        {
            await table.UpdateEntityAsync(entity, entity.ETag, TableUpdateMode.Replace, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            // Removed or replaced meanwhile: remove what is there now.
            return await RemoveAsync(address, scope, cancellationToken);
        }
        if (entries is { } snapshot)
        {
            Apply(snapshot, entity, clock.GetUtcNow());
        }
        metrics?.Count("removed", entity.Category);
        return true;
    }

    /// <summary>One page of live entries, of one scope or (null) all, and the continuation token of the next page.</summary>
    /// <exception cref="RequestFailedException">Storage refused the query (a malformed continuation token: status 400).</exception>
    public async Task<(IReadOnlyList<SuppressionEntity> Entries, string? Continuation)> ListAsync(string? scope, int limit, string? continuation, CancellationToken cancellationToken)
    {
        var filter = scope is null ? "Removed eq false" : TableClient.CreateQueryFilter($"PartitionKey eq {scope} and Removed eq false");
        var now = clock.GetUtcNow();
        await foreach (var page in table.QueryAsync<SuppressionEntity>(filter, maxPerPage: limit, cancellationToken: cancellationToken).AsPages(continuation, limit))
        {
            // Expired entries are absent; a page may hold fewer than the limit for them.
            return (page.Values.Where(e => e.IsLive(now)).ToList(), page.ContinuationToken);
        }
        return ([], null);
    }

    /// <summary>Deletes tombstones and entries expired for over <see cref="TombstoneLifetime"/>; returns how many.</summary>
    public async Task<int> PurgeAsync(CancellationToken cancellationToken)
    {
        var before = clock.GetUtcNow() - TombstoneLifetime;
        var filter = TableClient.CreateQueryFilter($"(Removed eq true and Timestamp lt {before}) or ExpiresAt lt {before}");
        var deleted = 0;
        await foreach (var entity in table.QueryAsync<SuppressionEntity>(filter, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
        {
            try
            {
                await table.DeleteEntityAsync(entity, entity.ETag, cancellationToken);
                deleted++;
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                // Re-added or deleted meanwhile: nothing to purge.
            }
        }
        if (deleted > 0)
        {
            log.LogInformation("Purged {Count} removed or expired suppression entries", deleted);
        }
        return deleted;
    }

    public void Dispose() => refreshing.Dispose();

    private static void Apply(ConcurrentDictionary<string, LiveEntry> snapshot, SuppressionEntity entity, DateTimeOffset now)
    {
        var key = KeyOf(entity.PartitionKey, entity.RowKey);
        if (entity.IsLive(now))
        {
            snapshot[key] = new LiveEntry(entity.Reason, string.Intern(entity.Category), entity.ExpiresAt);
        }
        else
        {
            snapshot.TryRemove(key, out _);
        }
    }

    private static string KeyOf(string scope, string row) => string.Concat(scope, "\n", row);

    /// <summary>What the check needs of an entry.</summary>
    private sealed record LiveEntry(string Reason, string Category, DateTimeOffset? ExpiresAt)
    {
        public bool IsLive(DateTimeOffset now) => ExpiresAt is not { } expires || expires > now;
    }
}
