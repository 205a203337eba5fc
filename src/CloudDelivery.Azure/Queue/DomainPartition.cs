using System.Globalization;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// The recipients-table partition a record lives in: its recipient domain ("gmail.com"), or for a hot
/// domain spread over several shards, one shard of it ("gmail.com~2"). Shard 0 is the bare domain, so a
/// domain that was never sharded keeps the partition (and record ids) it always had. Each partition has
/// its own lease and its own wake-ups, so shards of one domain are delivered by different workers in
/// parallel; a record never moves between partitions, so it still has exactly one lease, and one worker.
/// "~" cannot occur in a domain name (RFC 5321 §4.1.2), so a shard name never collides with a domain's.
/// </summary>
public static class DomainPartition
{
    public const char ShardSeparator = '~';

    /// <summary>More shards than any one domain needs: Azure's per-partition target (~2,000 entities/s) times this is far past one storage account's.</summary>
    public const int MaxShards = 64;

    /// <summary>The partition of shard <paramref name="shard"/> of <paramref name="domain"/>.</summary>
    public static string Of(string domain, int shard) =>
        shard == 0 ? domain : string.Create(CultureInfo.InvariantCulture, $"{domain}{ShardSeparator}{shard}");

    /// <summary>
    /// Splits a partition key into its domain and shard; false when the suffix is not a shard number (1 to
    /// <see cref="MaxShards"/> − 1, no leading zero), so that every shard has exactly one name.
    /// </summary>
    public static bool TryParse(string partition, out string domain, out int shard)
    {
        var separator = partition.LastIndexOf(ShardSeparator);
        if (separator < 0)
        {
            (domain, shard) = (partition, 0);
            return true;
        }
        var suffix = partition.AsSpan(separator + 1);
        if (separator > 0 && suffix.Length is 1 or 2 && suffix[0] != '0' && int.TryParse(suffix, NumberStyles.None, CultureInfo.InvariantCulture, out shard) && shard < MaxShards)
        {
            domain = partition[..separator];
            return true;
        }
        (domain, shard) = (partition, 0);
        return false;
    }

    /// <summary>The recipient domain of a partition (the partition itself when it is not a shard name).</summary>
    public static string DomainOf(string partition) => TryParse(partition, out var domain, out _) ? domain : partition;

    /// <summary>
    /// The shard of a domain that message <paramref name="messageId"/>'s records go to
    /// when the domain has <paramref name="shards"/> shards (a power of two). All recipients of a message
    /// at one domain go to the same shard, so they still share transactions and an inline body. The low
    /// bits of a hash of the id pick it, so the shard under 2K shards is the one under K or K more: a
    /// resumed submission (IdempotentSubmission) finds what was stored under any count by a few point reads.
    /// </summary>
    public static int ShardFor(string messageId, int shards) => shards <= 1 ? 0 : (int)(Hash(messageId) & (uint)(shards - 1));

    /// <summary>Every shard <see cref="ShardFor"/> can give the message, for any power-of-two count up to <see cref="MaxShards"/>; shard 0 first.</summary>
    public static IEnumerable<int> PossibleShards(string messageId)
    {
        var seen = new HashSet<int>();
        for (var shards = 1; shards <= MaxShards; shards *= 2)
        {
            var shard = ShardFor(messageId, shards);
            if (seen.Add(shard))
            {
                yield return shard;
            }
        }
    }

    /// <summary>True for 1, 2, 4 … <see cref="MaxShards"/>.</summary>
    public static bool IsValidShardCount(int shards) => shards is >= 1 and <= MaxShards && (shards & (shards - 1)) == 0;

    /// <summary>
    /// A table filter for every partition of <paramref name="domain"/>: the domain and its shards
    /// ("domain~1" … "domain~63" sort between "domain~" and "domain~:", as ':' follows the digits).
    /// </summary>
    public static string FilterOf(string domain) =>
        global::Azure.Data.Tables.TableClient.CreateQueryFilter($"(PartitionKey eq {domain} or (PartitionKey gt {domain + ShardSeparator} and PartitionKey lt {domain + ShardSeparator + ":"}))");

    /// <summary>
    /// FNV-1a of the id, stable across processes and versions (unlike string.GetHashCode), with a final
    /// mix so the low bits, which pick the shard, depend on every character.
    /// </summary>
    private static uint Hash(string text)
    {
        var hash = 2166136261u;
        foreach (var c in text)
        {
            hash = (hash ^ c) * 16777619u;
        }
        hash ^= hash >> 16;
        hash *= 0x85ebca6bu;
        return hash ^ (hash >> 13);
    }
}
