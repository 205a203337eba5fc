using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Queue;

/// <summary>What one purge removed.</summary>
/// <param name="Records">Final recipient records deleted (their inline bodies with them).</param>
/// <param name="Bodies">Body blobs deleted.</param>
/// <param name="IdempotencyKeys">Idempotency keys past their window deleted.</param>
public sealed record PurgeResult(int Records, int Bodies, int IdempotencyKeys = 0);

/// <summary>
/// Keeps storage from growing without bound, as an MTA removes a queue file once every recipient is done:
/// records that reached a final state (delivered, failed, expired, dropped) are deleted once they have
/// been final for <see cref="OutboundQueueOptions.Retention"/> (until then <c>status</c> shows them), and a
/// body blob is deleted as soon as no recipient can still need it.
/// </summary>
public sealed class QueuePurger(OutboundQueue queue, ILogger<QueuePurger>? logger = null)
{
    /// <summary>
    /// Margin before the oldest queued record's submission time (or now) within which bodies are kept: a
    /// submission in progress uploads its body before it writes its records, and clocks differ a little.
    /// </summary>
    public static readonly TimeSpan SubmissionGrace = TimeSpan.FromHours(1);

    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    public async Task<PurgeResult> PurgeAsync(CancellationToken cancellationToken)
    {
        var storage = queue.Storage;
        var now = queue.Time.GetUtcNow();

        // A body is needed while any record of its message is queued. Each blob carries its message's
        // submission time, the same value as its records' SubmittedAt, so every blob submitted before the
        // oldest queued record belongs to messages whose recipients are all final. The grace covers
        // submissions in progress (body first, records second) and blobs that only have the service's
        // CreatedOn, on another clock.
        // A recipient that failed or expired within the grace counts as queued too: the run that recorded
        // its outcome composes the DSN, which quotes the body, only after it has finished the domain.
        var oldestQueued = now;
        var recentFailure = now - SubmissionGrace;
        // Held records wait for an operator's release and keep their body as queued ones do.
        var needing = TableClient.CreateQueryFilter($"State eq {RecipientState.Queued} or State eq {RecipientState.Held} or ((State eq {RecipientState.Failed} or State eq {RecipientState.Expired}) and LastAttemptAt ge {recentFailure})");
        // Messages with such a recipient, per partition: their final records stay too, since the first one
        // of a message may hold its inline body (the retention can be shorter than the retry schedule).
        var queuedMessages = new HashSet<(string Partition, string MessageId)>();
        await foreach (var record in storage.Recipients.QueryAsync<RecipientRecord>(needing, select: ["PartitionKey", "MessageId", "SubmittedAt"], cancellationToken: cancellationToken))
        {
            queuedMessages.Add((record.PartitionKey, record.MessageId));
            if (record.SubmittedAt < oldestQueued)
            {
                oldestQueued = record.SubmittedAt;
            }
        }
        var bodiesBefore = oldestQueued - SubmissionGrace;

        // Final records: Timestamp is the service's time of the last change, i.e. when the record became final.
        var finalBefore = now - queue.Options.Retention;
        var expired = TableClient.CreateQueryFilter($"State ne {RecipientState.Queued} and State ne {RecipientState.Held} and RowKey lt {RecipientRecord.RecordRowKeyLimit} and Timestamp lt {finalBefore}");
        var byPartition = new Dictionary<string, List<TableEntity>>(StringComparer.Ordinal);
        await foreach (var entity in storage.Recipients.QueryAsync<TableEntity>(expired, select: ["PartitionKey", "RowKey", "MessageId"], cancellationToken: cancellationToken))
        {
            if (queuedMessages.Contains((entity.PartitionKey, entity.GetString("MessageId") ?? string.Empty)))
            {
                continue;
            }
            if (!byPartition.TryGetValue(entity.PartitionKey, out var list))
            {
                byPartition[entity.PartitionKey] = list = [];
            }
            list.Add(entity);
        }
        var records = 0;
        foreach (var (_, entities) in byPartition)
        {
            foreach (var chunk in entities.Chunk(100))
            {
                records += await DeleteRecordsAsync(storage.Recipients, chunk, cancellationToken);
            }
        }

        var bodies = 0;
        await foreach (var blob in storage.Bodies.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, prefix: null, cancellationToken))
        {
            if (SubmittedAt(blob) is { } created && created < bodiesBefore)
            {
                var deleted = await storage.Bodies.DeleteBlobIfExistsAsync(blob.Name, DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken);
                bodies += deleted.Value ? 1 : 0;
            }
        }
        var keys = await Submission.IdempotencyStore.PurgeExpiredAsync(storage.Idempotency, now, cancellationToken);
        // Removed and long-expired suppression entries (see SuppressionList.PurgeAsync).
        if (queue.Suppressions is { } suppressions)
        {
            await suppressions.PurgeAsync(cancellationToken);
        }
        if (records > 0 || bodies > 0 || keys > 0)
        {
            log.LogInformation("Purged {Records} final records (final for over {Retention}), {Bodies} bodies no recipient needs and {Keys} expired idempotency keys", records, queue.Options.Retention, bodies, keys);
        }
        return new PurgeResult(records, bodies, keys);
    }

    /// <summary>When the blob's message was submitted: its metadata (our clock), else the service's creation time.</summary>
    private static DateTimeOffset? SubmittedAt(BlobItem blob) =>
        blob.Metadata is { } metadata && metadata.TryGetValue(OutboundQueue.SubmittedAtMetadata, out var text) && long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var milliseconds)
            ? DateTimeOffset.FromUnixTimeMilliseconds(milliseconds)
            : blob.Properties.CreatedOn;

    /// <summary>One entity group transaction per 100 records of a partition; one by one when the batch fails.</summary>
    private static async Task<int> DeleteRecordsAsync(TableClient table, TableEntity[] entities, CancellationToken cancellationToken)
    {
        try
        {
            if (entities.Length == 1)
            {
                await table.DeleteEntityAsync(entities[0], entities[0].ETag, cancellationToken);
                return 1;
            }
            await table.SubmitTransactionAsync(entities.Select(e => new TableTransactionAction(TableTransactionActionType.Delete, e, e.ETag)), cancellationToken);
            return entities.Length;
        }
        catch (Exception e) when (e is RequestFailedException or TableTransactionFailedException)
        {
            // A record changed since it was read (an operator, a late writer): keep it, delete the others.
            var deleted = 0;
            foreach (var entity in entities)
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
            return deleted;
        }
    }
}
