using CloudDelivery.Azure.Domains;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>clouddelivery status --domain D</c>: the recipient domain's summary, in the API's words.</summary>
internal static class DomainStatus
{
    public static async Task<int> WriteAsync(OutboundQueue queue, string domain, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        if (RecipientDomainTlsHttpApi.PartitionOf(domain) is not { } partition)
        {
            await output.WriteLineAsync($"clouddelivery status: {domain} is not a domain name or address literal");
            return CliApplication.ExitUsage;
        }
        if (await RecipientDomainTlsStore.ReadAsync(queue.Storage.Recipients, partition, cancellationToken) is not { } seen)
        {
            await output.WriteLineAsync($"clouddelivery status: nothing is known yet of {partition}");
            return 1;
        }
        await output.WriteLineAsync(json ? RecipientDomainTlsHttpApi.ToJson(partition, seen) : $"{partition}: {seen.Describe()} (seen {seen.SeenAt:u})");
        return 0;
    }
}
