using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Data.Tables;

namespace CloudDelivery.Azure.Submission;

/// <summary>Where a key's submission stands: being stored, cut off with an unknown outcome, or answered.</summary>
internal enum ReservationState
{
    /// <summary>Its owner is storing the message (or crashed doing so: taken over once stale).</summary>
    Pending,

    /// <summary>Its owner failed after it may have stored part of the message: the next request with the key finishes it at once.</summary>
    Interrupted,

    /// <summary>Stored and answered: the answer is kept for repeats.</summary>
    Completed,
}

/// <summary>One idempotency key's entity: the reserved message id, and once completed the fingerprint and answer.</summary>
internal sealed record IdempotencyReservation(
    string Partition,
    string Row,
    ReservationState State,
    string MessageId,
    DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt,
    string? Fingerprint,
    HttpSubmissionResponse? Response,
    ETag ETag);

/// <summary>
/// The idempotency keys in their table (Storage:IdempotencyTable). A key is stored under its SHA-256 in
/// hex, so any key makes a valid table key and none is kept in clear; the first two hex digits are the
/// partition, so the purge deletes expired keys in transactions of up to 100 (entity group transactions
/// span one partition) while the load still spreads over 256 partitions. Every change is conditional on
/// the entity's ETag, so of two writers exactly one wins.
/// </summary>
internal sealed class IdempotencyStore(TableClient table)
{
    /// <summary>Answers are kept in binary properties of at most 64 KiB each (the service's limit), so many recipients still fit.</summary>
    private const int ChunkBytes = 64 * 1024;

    private const int MaxChunks = 14;

    public static (string Partition, string Row) KeyOf(string key)
    {
        var hex = Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(key)));
        return (hex[..2], hex);
    }

    /// <summary>
    /// Reserves <paramref name="key"/> with a fresh message id, unless someone holds it: then its current
    /// entity, not owned. An expired entity (not purged yet) is replaced as if absent.
    /// </summary>
    public async Task<(IdempotencyReservation Reservation, bool Owned)> ReserveAsync(string key, string messageId, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken)
    {
        var (partition, row) = KeyOf(key);
        var fresh = new IdempotencyReservation(partition, row, ReservationState.Pending, messageId, now, now + window, null, null, default);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var added = await AddCreatingTableAsync(ToEntity(fresh), cancellationToken);
                return (fresh with { ETag = added.Headers.ETag ?? default }, true);
            }
            catch (RequestFailedException e) when (e.Status == 409)
            {
            }
            var held = await ReadAsync(key, cancellationToken);
            if (held is null)
            {
                continue; // released or purged meanwhile: try again
            }
            if (held.ExpiresAt > now || attempt >= 3)
            {
                return (held, false);
            }
            if (await ReplaceAsync(fresh with { ETag = held.ETag }, cancellationToken) is { } replaced)
            {
                return (replaced, true);
            }
        }
    }

    public async Task<IdempotencyReservation?> ReadAsync(string key, CancellationToken cancellationToken)
    {
        var (partition, row) = KeyOf(key);
        var response = await table.GetEntityIfExistsAsync<TableEntity>(partition, row, cancellationToken: cancellationToken);
        return response.HasValue ? FromEntity(response.Value!) : null;
    }

    /// <summary>Takes over a stale or interrupted reservation (same message id, now this caller's); null when another caller changed it first.</summary>
    public Task<IdempotencyReservation?> ClaimAsync(IdempotencyReservation held, DateTimeOffset now, CancellationToken cancellationToken) =>
        ReplaceAsync(held with { State = ReservationState.Pending, CreatedAt = now }, cancellationToken);

    public Task<IdempotencyReservation?> CompleteAsync(IdempotencyReservation owned, string fingerprint, HttpSubmissionResponse response, CancellationToken cancellationToken) =>
        ReplaceAsync(owned with { State = ReservationState.Completed, Fingerprint = fingerprint, Response = response }, cancellationToken);

    public Task<IdempotencyReservation?> MarkInterruptedAsync(IdempotencyReservation owned, CancellationToken cancellationToken) =>
        ReplaceAsync(owned with { State = ReservationState.Interrupted }, cancellationToken);

    /// <summary>Frees the key: nothing was stored under it.</summary>
    public async Task ReleaseAsync(IdempotencyReservation owned, CancellationToken cancellationToken)
    {
        try
        {
            await table.DeleteEntityAsync(owned.Partition, owned.Row, owned.ETag, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
        }
    }

    /// <summary>
    /// Deletes the keys whose window ended before <paramref name="now"/>: one query, then one transaction
    /// per 100 keys of a partition (conditional on the ETag read, so a key reserved again meanwhile stays).
    /// </summary>
    public static async Task<int> PurgeExpiredAsync(TableClient table, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var byPartition = new Dictionary<string, List<TableEntity>>(StringComparer.Ordinal);
        try
        {
            var filter = TableClient.CreateQueryFilter($"ExpiresAt lt {now}");
            await foreach (var entity in table.QueryAsync<TableEntity>(filter, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            {
                if (!byPartition.TryGetValue(entity.PartitionKey, out var list))
                {
                    byPartition[entity.PartitionKey] = list = [];
                }
                list.Add(entity);
            }
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return 0; // no key was ever stored
        }
        var deleted = 0;
        foreach (var chunk in byPartition.Values.SelectMany(list => list.Chunk(100)))
        {
            try
            {
                await table.SubmitTransactionAsync(chunk.Select(e => new TableTransactionAction(TableTransactionActionType.Delete, e, e.ETag)), cancellationToken);
                deleted += chunk.Length;
            }
            catch (Exception e) when (e is RequestFailedException or TableTransactionFailedException)
            {
                foreach (var entity in chunk)
                {
                    try
                    {
                        await table.DeleteEntityAsync(entity, entity.ETag, cancellationToken);
                        deleted++;
                    }
                    catch (RequestFailedException again) when (again.Status is 404 or 412)
                    {
                    }
                }
            }
        }
        return deleted;
    }

    private async Task<Response> AddCreatingTableAsync(TableEntity entity, CancellationToken cancellationToken)
    {
        try
        {
            return await table.AddEntityAsync(entity, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // A host that skipped EnsureCreated (the Functions app): create the table on first use.
            await table.CreateIfNotExistsAsync(cancellationToken);
            return await table.AddEntityAsync(entity, cancellationToken);
        }
    }

    private async Task<IdempotencyReservation?> ReplaceAsync(IdempotencyReservation next, CancellationToken cancellationToken)
    {
        try
        {
            var response = await table.UpdateEntityAsync(ToEntity(next), next.ETag, TableUpdateMode.Replace, cancellationToken);
            return next with { ETag = response.Headers.ETag ?? default };
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return null;
        }
    }

    private static TableEntity ToEntity(IdempotencyReservation reservation)
    {
        var entity = new TableEntity(reservation.Partition, reservation.Row)
        {
            ["State"] = reservation.State.ToString(),
            ["MessageId"] = reservation.MessageId,
            ["CreatedAt"] = reservation.CreatedAt,
            ["ExpiresAt"] = reservation.ExpiresAt,
        };
        if (reservation.Fingerprint is { } fingerprint)
        {
            entity["Fingerprint"] = fingerprint;
        }
        if (reservation.Response is { } response)
        {
            entity["Status"] = response.Status;
            var bytes = Encoding.UTF8.GetBytes(response.Json);
            if (bytes.Length > ChunkBytes)
            {
                // Large answers (many recipients) are mostly repeated domains and message ids: they compress well.
                bytes = Compress(bytes);
                entity["ResponseGzip"] = true;
            }
            if (bytes.Length > ChunkBytes * MaxChunks)
            {
                // Larger than an entity holds: repeats get the message id only.
                bytes = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new { messageId = reservation.MessageId }));
                entity.Remove("ResponseGzip");
            }
            for (var i = 0; i * ChunkBytes < bytes.Length; i++)
            {
                entity[ChunkName(i)] = bytes.AsSpan(i * ChunkBytes, Math.Min(ChunkBytes, bytes.Length - (i * ChunkBytes))).ToArray();
            }
        }
        return entity;
    }

    private static IdempotencyReservation FromEntity(TableEntity entity)
    {
        HttpSubmissionResponse? response = null;
        if (entity.GetInt32("Status") is { } status)
        {
            using var bytes = new MemoryStream();
            for (var i = 0; entity.GetBinary(ChunkName(i)) is { } chunk; i++)
            {
                bytes.Write(chunk);
            }
            var json = entity.GetBoolean("ResponseGzip") == true ? Decompress(bytes) : bytes.ToArray();
            response = new HttpSubmissionResponse(status, Encoding.UTF8.GetString(json));
        }
        return new IdempotencyReservation(
            entity.PartitionKey,
            entity.RowKey,
            Enum.TryParse<ReservationState>(entity.GetString("State"), out var state) ? state : ReservationState.Pending,
            entity.GetString("MessageId") ?? string.Empty,
            entity.GetDateTimeOffset("CreatedAt") ?? DateTimeOffset.MinValue,
            entity.GetDateTimeOffset("ExpiresAt") ?? DateTimeOffset.MinValue,
            entity.GetString("Fingerprint"),
            response,
            entity.ETag);
    }

    private static string ChunkName(int index) => index == 0 ? "Response" : $"Response{index}";

    private static byte[] Compress(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(bytes);
        }
        return output.ToArray();
    }

    private static byte[] Decompress(MemoryStream compressed)
    {
        compressed.Position = 0;
        using var gzip = new GZipStream(compressed, CompressionMode.Decompress);
        using var output = new MemoryStream();
        gzip.CopyTo(output);
        return output.ToArray();
    }
}
