using System.Collections.Frozen;
using System.Globalization;
using Azure.Data.Tables;
using CloudDelivery.Addressing;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// How many shards (see <see cref="DomainPartition"/>) each recipient domain's new records are spread
/// over. A domain is one partition and one lease, so one worker delivers it and one partition takes all
/// its writes; a few receivers (gmail.com, outlook.com) carry most of a big sender's mail. Two ways past:
/// <list type="bullet">
/// <item>a pin, <see cref="OutboundQueueOptions.Shards"/> ("gmail.com=4"), for domains known to be hot;</item>
/// <item>automatically: a delivery run that finds at least <see cref="OutboundQueueOptions.HotDomainBacklog"/>
/// ready records marks its domain hot (<see cref="MarkHotAsync"/>) with <see cref="OutboundQueueOptions.MaxShards"/>
/// shards for <see cref="OutboundQueueOptions.HotDomainFor"/>, renewed while the backlog lasts.</item>
/// </list>
/// The hot set is a few rows in the recipients table's <see cref="Partition"/> partition, read by every
/// host in the background once per <see cref="OutboundQueueOptions.HotSetRefresh"/> (one query, nothing per
/// message; submissions read it from memory).
/// It only decides where new records go: records never move, every partition has its own lease, so a
/// shard count that changes, or that two processes see differently for a while, never lets two workers
/// deliver one record. The backlog a domain had before it became hot drains from shard 0; shards that
/// stop receiving records drain by their own wake-ups (and the sweeper) and then cost nothing.
/// </summary>
public sealed class HotDomains
{
    /// <summary>The hot set's partition in the recipients table; "~" is not a domain, so it is never delivered.</summary>
    public const string Partition = "~hot";

    /// <summary>Row key prefix of a domain's row: at or above "~", so queue listings and the purge skip it as they skip leases.</summary>
    public const string RowKeyPrefix = "~shards.";

    private readonly TableClient table;
    private readonly OutboundQueueOptions options;
    private readonly TimeProvider time;
    private readonly FrozenDictionary<string, int> pinned;
    private readonly Lock gate = new();
    private volatile FrozenDictionary<string, HotDomain> current = FrozenDictionary<string, HotDomain>.Empty;

    /// <exception cref="ArgumentException"><see cref="OutboundQueueOptions.Shards"/> or <see cref="OutboundQueueOptions.MaxShards"/> is invalid.</exception>
    public HotDomains(TableClient table, OutboundQueueOptions options, TimeProvider time)
    {
        this.table = table;
        this.options = options;
        this.time = time;
        pinned = ParsePins(options.Shards);
        if (!DomainPartition.IsValidShardCount(options.MaxShards))
        {
            throw new ArgumentException($"Queue:MaxShards {options.MaxShards}: must be a power of two from 1 to {DomainPartition.MaxShards}");
        }
    }

    /// <summary>A hot domain as stored: its shard count and when it stops being hot.</summary>
    public sealed record HotDomain(int Shards, DateTimeOffset Until);

    /// <summary>
    /// The shard count new records of <paramref name="domain"/> (a partition key: A-labels, lower case) are
    /// spread over: its pin, else its hot count while that lasts, else 1. From memory: submissions never
    /// wait for the hot set, which <see cref="RefreshAsync"/> reads in the background.
    /// </summary>
    public int ShardsOf(string domain)
    {
        if (pinned.TryGetValue(domain, out var pin))
        {
            return pin;
        }
        return AutomaticSharding && current.TryGetValue(domain, out var hot) && hot.Until > time.GetUtcNow() ? hot.Shards : 1;
    }

    /// <summary>Whether runs mark domains hot (<see cref="OutboundQueueOptions.HotDomainBacklog"/> above zero and <see cref="OutboundQueueOptions.MaxShards"/> above one); pins apply either way.</summary>
    public bool AutomaticSharding => options.HotDomainBacklog > 0 && options.MaxShards > 1;

    /// <summary>The pinned domains and their shard counts.</summary>
    public IReadOnlyDictionary<string, int> Pinned => pinned;

    /// <summary>
    /// A run found <paramref name="domain"/>'s ready backlog past the threshold: spread its new records over
    /// <see cref="OutboundQueueOptions.MaxShards"/> shards for <see cref="OutboundQueueOptions.HotDomainFor"/>.
    /// One write when the domain becomes hot and then at most once per half of that period while it stays hot;
    /// this process's submissions see it at once, the others' at their next <see cref="RefreshAsync"/>.
    /// </summary>
    /// <returns>Whether it wrote (the domain became hot or its period was renewed).</returns>
    public async Task<bool> MarkHotAsync(string domain, CancellationToken cancellationToken)
    {
        if (!AutomaticSharding || pinned.ContainsKey(domain))
        {
            return false;
        }
        var now = time.GetUtcNow();
        if (current.TryGetValue(domain, out var hot) && hot.Shards >= options.MaxShards && hot.Until - now > options.HotDomainFor / 2)
        {
            return false;
        }
        var marked = new HotDomain(options.MaxShards, now + options.HotDomainFor);
        await table.UpsertEntityAsync(
            new TableEntity(Partition, RowKeyPrefix + domain) { ["Shards"] = marked.Shards, ["Until"] = marked.Until },
            TableUpdateMode.Replace,
            cancellationToken);
        lock (gate)
        {
            var copy = current.ToDictionary(StringComparer.Ordinal);
            copy[domain] = marked;
            current = copy.ToFrozenDictionary(StringComparer.Ordinal);
        }
        return true;
    }

    /// <summary>
    /// Reads the hot set (one query of its partition), keeping this process's own newer marks. Run every
    /// <see cref="OutboundQueueOptions.HotSetRefresh"/> by the hosts' <see cref="LoopName"/> loop; on failure
    /// the last set stays (it is a hint: new records go where they went) and the loop tries again.
    /// </summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var started = time.GetUtcNow();
        var read = new Dictionary<string, HotDomain>(StringComparer.Ordinal);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition} and RowKey ge {RowKeyPrefix} and Until gt {started}");
        await foreach (var entity in table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            // A row another version wrote, or edited by hand, that does not parse is no hot domain.
            if (entity.RowKey.StartsWith(RowKeyPrefix, StringComparison.Ordinal) && entity.GetInt32("Shards") is { } shards && DomainPartition.IsValidShardCount(shards) && entity.GetDateTimeOffset("Until") is { } until)
            {
                read[entity.RowKey[RowKeyPrefix.Length..]] = new HotDomain(shards, until);
            }
        }
        lock (gate)
        {
            // Marks made while reading are this process's own and may be newer than what it read.
            foreach (var (domain, hot) in current)
            {
                if (hot.Until > started && (!read.TryGetValue(domain, out var stored) || stored.Until < hot.Until))
                {
                    read[domain] = hot;
                }
            }
            current = read.ToFrozenDictionary(StringComparer.Ordinal);
        }
    }

    /// <summary>The name of the hosts' loop that runs <see cref="RefreshAsync"/> (in health's loop list).</summary>
    public const string LoopName = "hot-domains";

    /// <summary>Reads "domain=K[,domain=K…]"; K a power of two up to <see cref="DomainPartition.MaxShards"/>.</summary>
    /// <exception cref="ArgumentException">An entry does not parse.</exception>
    public static FrozenDictionary<string, int> ParsePins(string? text)
    {
        var pins = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in (text ?? string.Empty).Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = entry.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || !int.TryParse(entry.AsSpan(equals + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var shards) || !DomainPartition.IsValidShardCount(shards))
            {
                throw new ArgumentException($"Queue:Shards entry \"{entry}\": expected domain=K with K a power of two from 1 to {DomainPartition.MaxShards}");
            }
            if (!NextHop.TryParse(entry[..equals], out var domain, out var error))
            {
                throw new ArgumentException($"Queue:Shards entry \"{entry}\": {error}");
            }
            // As submissions store partitions: A-labels, lower case.
            pins[domain.ToString()] = shards;
        }
        return pins.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
