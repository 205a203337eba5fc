using Azure;
using Azure.Data.Tables;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// Exclusive ownership of a recipient domain's partition (the domain, or one shard of a hot domain, see
/// <see cref="DomainPartition"/>) for one worker, so no recipient record is delivered by two workers at
/// once. It is an entity in that partition updated with ETag conditions (optimistic
/// concurrency): taking it fails if someone else changed it first. It expires by itself, so a crashed
/// worker's domain is free again after the lease time.
/// </summary>
public sealed class DomainLease
{
    private readonly TableClient table;
    private readonly TimeProvider time;
    private ETag etag;

    private DomainLease(TableClient table, TimeProvider time, string partition, string owner, ETag etag, DateTimeOffset until)
    {
        this.table = table;
        this.time = time;
        Partition = partition;
        Owner = owner;
        this.etag = etag;
        Until = until;
    }

    /// <summary>The partition leased: a domain, or a shard of one ("gmail.com~2").</summary>
    public string Partition { get; }

    public string Owner { get; }

    public DateTimeOffset Until { get; private set; }

    /// <summary>Another worker found the domain busy and asked this holder to look for ready records once more.</summary>
    public bool RerunRequested { get; private set; }

    /// <summary>
    /// ETags of leases this process released last, per table and domain: when nobody has touched a lease
    /// since, it can be taken with one conditional write instead of a read and a write.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Table, string Domain), ETag> Released = new();

    /// <summary>
    /// Takes the lease of <paramref name="domain"/>, or returns null with when the current holder's lease
    /// ends and the lease entity's ETag as read (for <see cref="RequestRerunAsync"/>; default when unknown).
    /// </summary>
    public static async Task<(DomainLease? Lease, DateTimeOffset BusyUntil, ETag BusyETag)> TryAcquireAsync(TableClient table, TimeProvider time, string domain, TimeSpan duration, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var owner = Guid.NewGuid().ToString("N");
        var entity = new TableEntity(domain, RecipientRecord.LeaseRowKey) { ["Owner"] = owner, ["Until"] = now + duration };
        if (Released.TryRemove((table.Name, domain), out var releasedETag))
        {
            try
            {
                var taken = await table.UpdateEntityAsync(entity, releasedETag, TableUpdateMode.Replace, cancellationToken);
                return (new DomainLease(table, time, domain, owner, taken.Headers.ETag ?? ETag.All, now + duration), default, default);
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
                // A released lease (no owner) is free whatever its end says: it is the releaser's clock,
                // which may be ahead of ours, and there is no holder to ask for a rerun.
                if (until > now && !string.IsNullOrEmpty(existing.Value.GetString("Owner")))
                {
                    return (null, until, existing.Value.ETag);
                }
                response = await table.UpdateEntityAsync(entity, existing.Value.ETag, TableUpdateMode.Replace, cancellationToken);
            }
            return (new DomainLease(table, time, domain, owner, response.Headers.ETag ?? ETag.All, now + duration), default, default);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            // Another worker got there between our read and write.
            return (null, now + TimeSpan.FromSeconds(30), default);
        }
    }

    /// <summary>
    /// Asks the holder of the lease read with <paramref name="seen"/> to look for ready records once more
    /// before it lets the domain go: the holder's next conditional write of the lease fails on the changed
    /// ETag, it reads the flag and runs again. False when the lease changed since it was read (released or
    /// taken over): then the caller should try to take it itself.
    /// </summary>
    public static async Task<bool> RequestRerunAsync(TableClient table, string domain, ETag seen, CancellationToken cancellationToken)
    {
        try
        {
            await table.UpdateEntityAsync(new TableEntity(domain, RecipientRecord.LeaseRowKey) { ["Rerun"] = true }, seen, TableUpdateMode.Merge, cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return false;
        }
    }

    /// <summary>
    /// After a conditional write failed: if the lease is still ours, someone only asked for a rerun; take
    /// the current ETag and note the request. False when the lease now belongs to another worker.
    /// </summary>
    private async Task<bool> AdoptAsync(CancellationToken cancellationToken)
    {
        var current = await table.GetEntityIfExistsAsync<TableEntity>(Partition, RecipientRecord.LeaseRowKey, cancellationToken: cancellationToken);
        if (!current.HasValue || current.Value!.GetString("Owner") != Owner)
        {
            return false;
        }
        etag = current.Value.ETag;
        RerunRequested |= current.Value.GetBoolean("Rerun") == true;
        return true;
    }

    /// <summary>
    /// Extends the lease (and clears a rerun request in storage, keeping it in <see cref="RerunRequested"/>);
    /// false when it was lost (expired and taken by another worker).
    /// </summary>
    public async Task<bool> RenewAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        // No limit on conflicts while the lease is still ours: each is one rerun request, one write by a
        // worker that found the domain busy, so they end; giving up would report a lease that is still
        // held (and flagged) as lost.
        while (true)
        {
            var until = time.GetUtcNow() + duration;
            try
            {
                var response = await table.UpdateEntityAsync(new TableEntity(Partition, RecipientRecord.LeaseRowKey) { ["Owner"] = Owner, ["Until"] = until }, etag, TableUpdateMode.Replace, cancellationToken);
                etag = response.Headers.ETag ?? ETag.All;
                Until = until;
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                if (e.Status == 404 || !await AdoptAsync(cancellationToken))
                {
                    return false;
                }
            }
        }
    }

    /// <summary>
    /// Gives the domain free, unless another worker asked for a rerun meanwhile: then the lease is kept
    /// (renewed for <paramref name="duration"/>), the request cleared, and false returned so the caller
    /// looks for ready records again.
    /// </summary>
    public async Task<bool> TryReleaseAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (RerunRequested)
            {
                RerunRequested = false;
                // Kept for the rerun; if it was lost meanwhile there is nothing to give back.
                return !await RenewAsync(duration, cancellationToken);
            }
            if (await ReleaseOnceAsync(cancellationToken))
            {
                return true;
            }
        }
    }

    /// <summary>Gives the domain free before the lease ends, whether or not a rerun was requested (after a failure).</summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        // Until it is given back or lost, as in RenewAsync: a lease left held after a run would make the
        // next wake-up ask a holder that is gone for a rerun.
        while (!await ReleaseOnceAsync(cancellationToken))
        {
        }
    }

    /// <summary>
    /// One conditional release write. True when the lease is given back or was lost already; false when a
    /// rerun request changed its ETag meanwhile (adopted, see <see cref="RerunRequested"/>): write again.
    /// </summary>
    private async Task<bool> ReleaseOnceAsync(CancellationToken cancellationToken)
    {
        try
        {
            var released = await table.UpdateEntityAsync(new TableEntity(Partition, RecipientRecord.LeaseRowKey) { ["Owner"] = string.Empty, ["Until"] = time.GetUtcNow() }, etag, TableUpdateMode.Replace, cancellationToken);
            if (released.Headers.ETag is { } releasedETag)
            {
                Released[(table.Name, Partition)] = releasedETag;
            }
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return e.Status == 404 || !await AdoptAsync(cancellationToken);
        }
    }
}
