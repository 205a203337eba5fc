using CloudDelivery.Azure.Domains;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Shaping;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>clouddelivery status --domain D</c>: the recipient domain's summary (TLS support and traffic shaping), in the API's words.</summary>
internal static class DomainStatus
{
    public static async Task<int> WriteAsync(OutboundQueue queue, DestinationShaping shaping, string domain, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        if (RecipientDomainTlsHttpApi.PartitionOf(domain) is not { } partition)
        {
            await output.WriteLineAsync($"clouddelivery status: {domain} is not a domain name or address literal");
            return CliApplication.ExitUsage;
        }
        var seen = await RecipientDomainTlsStore.ReadAsync(queue.Storage.Recipients, partition, cancellationToken);
        var shaped = await shaping.DescribeAsync(partition, cancellationToken);
        // The CLI runs no loops: one read of the hot set for the answer.
        await queue.HotDomains.RefreshAsync(cancellationToken);
        var shards = queue.HotDomains.ShardsOf(partition);
        if (seen is null && shaped.PausedUntil is null)
        {
            await output.WriteLineAsync($"clouddelivery status: nothing is known yet of {partition}");
            return 1;
        }
        if (json)
        {
            await output.WriteLineAsync(RecipientDomainTlsHttpApi.ToJson(partition, seen, shaped, shards));
            return 0;
        }
        await output.WriteLineAsync(seen is null ? $"{partition}: no delivery got past EHLO yet" : $"{partition}: {seen.Describe()} (seen {seen.SeenAt:u})");
        await output.WriteLineAsync($"  {DestinationShaping.Describe(shaped)}");
        if (shards > 1)
        {
            await output.WriteLineAsync($"  new records spread over {shards} shards ({(queue.HotDomains.Pinned.ContainsKey(partition) ? "pinned by Queue:Shards" : "hot: its backlog passed Queue:HotDomainBacklog")})");
        }
        return 0;
    }
}
