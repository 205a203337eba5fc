using System.Globalization;
using System.Text;
using Azure.Data.Tables;

namespace CloudDelivery.Azure.Shaping;

/// <summary>
/// A destination's throttle state as one instance saw it, for the others: paused until when, at what
/// lowered rate. <see cref="ChangedAt"/> orders the states of one key; the newest wins.
/// </summary>
/// <param name="ShapingKey">The rule's key: a recipient domain or an MX host suffix (".google.com").</param>
/// <param name="PausedUntil">No new message to the destination before this; in the past once it recovered.</param>
/// <param name="MessagesPerMinute">The lowered rate; null when the configured rate applies again.</param>
/// <param name="ChangedAt">When the instance saw the transition.</param>
/// <param name="Instance">Which instance wrote it (its own rows are not applied back to it).</param>
public sealed record ThrottleState(string ShapingKey, DateTimeOffset PausedUntil, int? MessagesPerMinute, DateTimeOffset ChangedAt, string Instance);

/// <summary>
/// The table of shared throttle state (Storage:ShapingTable): one row per shaping key, replaced on each
/// throttle transition (a throttle seen, a recovery). Its cost is bounded by what it holds: a row per
/// destination that ever throttled us, one query per instance per <see cref="SharedShapingOptions.SharedStateInterval"/>,
/// and a write only when an instance's state for a key changes — nothing per message.
/// </summary>
public sealed class ThrottleStateTable(TableClient table)
{
    /// <summary>The one row of a key; the partition is the key, so a key's writes never contend with another's.</summary>
    public const string RowKey = "throttle";

    /// <summary>At most this many rows are read per round: far more destinations than ever throttle one sender.</summary>
    public const int MaxRows = 1000;

    /// <summary>Replaces the row of <paramref name="state"/>'s key (last writer wins: the newest transition).</summary>
    public Task WriteAsync(ThrottleState state, CancellationToken cancellationToken) =>
        table.UpsertEntityAsync(new TableEntity(PartitionOf(state.ShapingKey), RowKey)
        {
            ["ShapingKey"] = state.ShapingKey,
            ["PausedUntil"] = state.PausedUntil,
            ["MessagesPerMinute"] = state.MessagesPerMinute ?? 0,
            ["ChangedAt"] = state.ChangedAt,
            ["Instance"] = state.Instance,
        }, TableUpdateMode.Replace, cancellationToken);

    /// <summary>The states changed at or after <paramref name="since"/>, at most <see cref="MaxRows"/>; rows that do not parse are skipped.</summary>
    public async Task<List<ThrottleState>> ReadChangedSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        var states = new List<ThrottleState>();
        var filter = TableClient.CreateQueryFilter($"ChangedAt ge {since}");
        await foreach (var entity in table.QueryAsync<TableEntity>(filter, maxPerPage: 200, cancellationToken: cancellationToken))
        {
            if (ToState(entity) is { } state)
            {
                states.Add(state);
            }
            if (states.Count >= MaxRows)
            {
                break;
            }
        }
        return states;
    }

    /// <summary>The state of one key, or null when no instance ever saw it throttle.</summary>
    public async Task<ThrottleState?> ReadAsync(string shapingKey, CancellationToken cancellationToken)
    {
        var response = await table.GetEntityIfExistsAsync<TableEntity>(PartitionOf(shapingKey), RowKey, cancellationToken: cancellationToken);
        return response.HasValue ? ToState(response.Value!) : null;
    }

    private static ThrottleState? ToState(TableEntity entity)
    {
        // Written by another version or by hand: a row missing a field is not applied rather than failing the round.
        if (entity.GetString("ShapingKey") is not { Length: > 0 } key
            || entity.GetDateTimeOffset("PausedUntil") is not { } pausedUntil
            || entity.GetDateTimeOffset("ChangedAt") is not { } changedAt)
        {
            return null;
        }
        var rate = entity.GetInt32("MessagesPerMinute");
        return new ThrottleState(key, pausedUntil, rate is > 0 ? rate : null, changedAt, entity.GetString("Instance") ?? string.Empty);
    }

    /// <summary>
    /// The partition key of a shaping key: Table Storage refuses '/', '\', '#', '?' and control characters
    /// in keys, so anything outside lower-case letters, digits, '.', '-' and '_' is written as "%XXXX" (its
    /// UTF-16 code unit), which keeps distinct keys apart. The key is text the operator's rules chose, not
    /// input from the network, but it must never make a write fail.
    /// </summary>
    public static string PartitionOf(string shapingKey)
    {
        var key = new StringBuilder(shapingKey.Length);
        foreach (var c in shapingKey.ToLowerInvariant())
        {
            if (c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-' or '_')
            {
                key.Append(c);
            }
            else
            {
                key.Append('%').Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
            }
        }
        return key.Length == 0 ? "%" : key.ToString();
    }
}
