using System.Collections.Concurrent;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Delivery;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Domains;

/// <summary>
/// What each recipient domain's MX was last seen to support (<see cref="RecipientDomainTls"/>), one entity
/// per domain in the domain's partition of the recipients table, row key <see cref="RowKey"/>: it sorts
/// after the records and "~lease", and has none of the columns record queries filter on (State, MessageId,
/// NextAttemptAt), so they never see it.
/// <para>
/// Written after a delivery run only when it changed: the process remembers what it last wrote per domain.
/// The first time it sees a domain it writes without reading (an upsert: a read first would cost every cold
/// domain one more transaction); after that only a change is written, and an unchanged summary once a
/// <see cref="SeenAtRefresh"/>, so <c>seenAt</c> stays roughly current. A failing write is logged and
/// forgotten: the summary is a hint, never a reason to fail or repeat a delivery.
/// </para>
/// </summary>
public sealed class RecipientDomainTlsStore(TableClient table, ILogger? logger = null)
{
    /// <summary>The row key of a domain's summary in its partition.</summary>
    public const string RowKey = "~tls";

    /// <summary>An unchanged summary is written again after this long, to move its <c>seenAt</c> on.</summary>
    public static readonly TimeSpan SeenAtRefresh = TimeSpan.FromDays(1);

    /// <summary>Domains remembered at most; beyond, the memory starts over (costing one write per domain seen again).</summary>
    public const int MaxRemembered = 100_000;

    private readonly ConcurrentDictionary<string, RecipientDomainTls> written = new(StringComparer.Ordinal);
    private readonly ILogger log = logger ?? NullLogger.Instance;

    /// <summary>Writes <paramref name="seen"/> for <paramref name="domain"/> (a recipients-table partition key) when it differs from what this process last wrote.</summary>
    /// <returns>True when a write was made and succeeded.</returns>
    public async Task<bool> RecordAsync(string domain, RecipientDomainTls seen, CancellationToken cancellationToken)
    {
        if (written.TryGetValue(domain, out var last) && seen.SameSupport(last) && seen.SeenAt - last.SeenAt < SeenAtRefresh)
        {
            return false;
        }
        try
        {
            await table.UpsertEntityAsync(ToEntity(domain, seen), TableUpdateMode.Replace, cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is RequestFailedException or HttpRequestException or TimeoutException or OperationCanceledException or AggregateException)
        {
            log.LogWarning(e, "Could not record what {Domain} supports", domain);
            return false;
        }
        if (written.Count >= MaxRemembered)
        {
            written.Clear();
        }
        written[domain] = seen;
        return true;
    }

    /// <summary>The stored summary of <paramref name="domain"/> (a partition key), or null when nothing is known.</summary>
    /// <exception cref="RequestFailedException">Storage trouble.</exception>
    public static async Task<RecipientDomainTls?> ReadAsync(TableClient table, string domain, CancellationToken cancellationToken)
    {
        var response = await table.GetEntityIfExistsAsync<TableEntity>(domain, RowKey, cancellationToken: cancellationToken);
        return response.HasValue ? FromEntity(response.Value!) : null;
    }

    private static TableEntity ToEntity(string domain, RecipientDomainTls seen) => new(domain, RowKey)
    {
        ["StartTls"] = seen.StartTls,
        ["RequireTls"] = seen.RequireTls,
        ["Verified"] = RecipientDomainTls.Name(seen.Verified),
        ["SeenAt"] = seen.SeenAt,
    };

    /// <summary>An entity written by another version may lack a column: it reads as not offered, not verified.</summary>
    private static RecipientDomainTls FromEntity(TableEntity entity) => new(
        entity.GetBoolean("StartTls") ?? false,
        entity.GetBoolean("RequireTls") ?? false,
        RecipientDomainTls.Parse(entity.GetString("Verified")) ?? TlsVerifiedBy.None,
        entity.GetDateTimeOffset("SeenAt") ?? entity.Timestamp ?? DateTimeOffset.MinValue);
}
