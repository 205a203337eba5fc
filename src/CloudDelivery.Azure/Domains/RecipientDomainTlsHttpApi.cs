using System.Text.Json;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Shaping;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Delivery;
using Microsoft.AspNetCore.Http;

namespace CloudDelivery.Azure.Domains;

/// <summary>
/// GET /api/domains/{domain}, the one handler of both hosts: what the domain's MX was last seen to support,
/// so an application can decide before it sends whether to ask for REQUIRETLS. 200 with
/// {domain, shards, startTls, requireTls, verified, seenAt, shaping}; 404 when nothing is known yet; 400 for a malformed
/// domain; 503 (with Retry-After) when storage cannot be reached.
/// </summary>
public static class RecipientDomainTlsHttpApi
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>Handles one lookup; never throws for the client's input or for storage trouble.</summary>
    public static async Task<IResult> GetAsync(string? domain, OutboundQueue queue, DestinationShaping? shaping, CancellationToken cancellationToken)
    {
        if (PartitionOf(domain) is not { } partition)
        {
            return Error(400, "invalid-domain", "not a domain name or address literal");
        }
        try
        {
            var seen = await RecipientDomainTlsStore.ReadAsync(queue.Storage.Recipients, partition, cancellationToken);
            var shaped = shaping is null ? null : await shaping.DescribeAsync(partition, cancellationToken);
            var shards = queue.HotDomains.ShardsOf(partition);
            // A domain throttled at connect never got past EHLO, yet its pause is worth seeing.
            return seen is not null || shaped?.PausedUntil is not null
                ? new JsonApiResult(200, ToJson(partition, seen, shaped, shards))
                : Error(404, "not-found", $"nothing is known yet of {partition}: no delivery to it got past EHLO");
        }
        catch (Exception e) when (SubmissionEndpoint.IsStorageTrouble(e, cancellationToken))
        {
            return SubmissionHttpApi.ToResult(SubmissionEndpoint.StorageUnavailable());
        }
    }

    /// <summary>
    /// The recipients-table partition of <paramref name="domain"/>, as submissions name it (lower case,
    /// A-labels or U-labels as the address grammar keeps them), or null for anything that is not a domain
    /// or address literal: storage never sees a key it would refuse.
    /// </summary>
    public static string? PartitionOf(string? domain)
    {
        if (string.IsNullOrWhiteSpace(domain) || domain.Length > 300)
        {
            return null;
        }
        var trimmed = domain.Trim().TrimEnd('.');
        return NextHop.TryParse(trimmed, out var hop, out _) ? hop.ToString() : null;
    }

    /// <summary>The JSON the API and <c>status --domain --json</c> print; <paramref name="shards"/>: how many shards new records of the domain are spread over (see HotDomains).</summary>
    public static string ToJson(string domain, RecipientDomainTls? seen, DestinationShapingState? shaping = null, int shards = 1) => JsonSerializer.Serialize(new
    {
        domain,
        shards,
        startTls = seen?.StartTls,
        requireTls = seen?.RequireTls,
        verified = seen is null ? null : RecipientDomainTls.Name(seen.Verified),
        seenAt = seen?.SeenAt,
        shaping = shaping is null ? null : new
        {
            key = shaping.Key,
            connections = shaping.Limits.Connections,
            messagesPerConnection = shaping.Limits.MessagesPerConnection,
            messagesPerMinute = shaping.Limits.MessagesPerMinute,
            messagesPerHour = shaping.Limits.MessagesPerHour,
            paused = shaping.PausedUntil is not null,
            pausedUntil = shaping.PausedUntil,
            currentMessagesPerMinute = shaping.MessagesPerMinute,
        },
    }, Json);

    private static JsonApiResult Error(int status, string code, string message) =>
        new(status, JsonSerializer.Serialize(new { error = code, message }, Json));
}
