using Azure;
using Azure.Data.Tables;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// Exclusive ownership of a recipient domain for one worker, so no recipient record is delivered by two
/// workers at once. It is an entity in the domain's partition updated with ETag conditions (optimistic
/// concurrency): taking it fails if someone else changed it first. It expires by itself, so a crashed
/// worker's domain is free again after the lease time.
/// </summary>
public sealed class DomainLease
{
    private readonly TableClient table;
    private readonly TimeProvider time;
    private ETag etag;

    private DomainLease(TableClient table, TimeProvider time, string domain, string owner, ETag etag, DateTimeOffset until)
    {
        this.table = table;
        this.time = time;
        Domain = domain;
        Owner = owner;
        this.etag = etag;
        Until = until;
    }

    public string Domain { get; }

    public string Owner { get; }

    public DateTimeOffset Until { get; private set; }

    /// <summary>
    /// ETags of leases this process released last, per table and domain: when nobody has touched a lease
    /// since, it can be taken with one conditional write instead of a read and a write.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Table, string Domain), ETag> Released = new();

    /// <summary>Takes the lease of <paramref name="domain"/>, or returns null with when the current holder's lease ends.</summary>
    public static async Task<(DomainLease? Lease, DateTimeOffset BusyUntil)> TryAcquireAsync(TableClient table, TimeProvider time, string domain, TimeSpan duration, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var owner = Guid.NewGuid().ToString("N");
        var entity = new TableEntity(domain, RecipientRecord.LeaseRowKey) { ["Owner"] = owner, ["Until"] = now + duration };
        if (Released.TryRemove((table.Name, domain), out var releasedETag))
        {
            try
            {
                var taken = await table.UpdateEntityAsync(entity, releasedETag, TableUpdateMode.Replace, cancellationToken);
                return (new DomainLease(table, time, domain, owner, taken.Headers.ETag ?? ETag.All, now + duration), default);
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                // Someone else had it since: fall back to reading it.
            }
        }
        var existing = await table.GetEntityIfExistsAsync<TableEntity>(domain, RecipientRecord.LeaseRowKey, cancellationToken: cancellationToken);
        try
        {
            Response response;
            if (!existing.HasValue)
            {
                response = await table.AddEntityAsync(entity, cancellationToken);
            }
            else
            {
                var until = existing.Value!.GetDateTimeOffset("Until") ?? DateTimeOffset.MinValue;
                if (until > now)
                {
                    return (null, until);
                }
                response = await table.UpdateEntityAsync(entity, existing.Value.ETag, TableUpdateMode.Replace, cancellationToken);
            }
            return (new DomainLease(table, time, domain, owner, response.Headers.ETag ?? ETag.All, now + duration), default);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            // Another worker got there between our read and write.
            return (null, now + TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Extends the lease; false when it was lost (expired and taken by another worker).</summary>
    public async Task<bool> RenewAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        var until = time.GetUtcNow() + duration;
        try
        {
            var response = await table.UpdateEntityAsync(new TableEntity(Domain, RecipientRecord.LeaseRowKey) { ["Owner"] = Owner, ["Until"] = until }, etag, TableUpdateMode.Replace, cancellationToken);
            etag = response.Headers.ETag ?? ETag.All;
            Until = until;
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return false;
        }
    }

    /// <summary>Gives the domain free before the lease ends.</summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        try
        {
            var released = await table.UpdateEntityAsync(new TableEntity(Domain, RecipientRecord.LeaseRowKey) { ["Owner"] = string.Empty, ["Until"] = time.GetUtcNow() }, etag, TableUpdateMode.Replace, cancellationToken);
            if (released.Headers.ETag is { } releasedETag)
            {
                Released[(table.Name, Domain)] = releasedETag;
            }
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            // Lost already; nothing to give back.
        }
    }
}
