using Azure;
using Azure.Data.Tables;

namespace CloudDelivery.Azure.Storage;

/// <summary>
/// Group commit for one table: writes to the same partition that arrive while an earlier write to it is
/// in flight are sent together, as one entity group transaction (up to 100 entities, one partition, one
/// request), and each caller returns only once its own entities are stored. Under light load nothing
/// waits: a write starts at once and goes alone. Under load the writes that pile up behind the one in
/// flight share the next request, so requests per entity fall just when storage is busiest.
/// </summary>
/// <remarks>
/// Used for the two most frequent writes there are: recipient records at submission and outcomes after a
/// server's reply. Both are durable before their caller goes on, as before; they only share requests.
/// A shared transaction is all or nothing: when one entity makes it fail (say, a record an operator
/// deleted meanwhile), that caller's writes go alone and fail only that caller while the others go on
/// together; when storage itself fails, every caller of the transaction hears of it.
/// </remarks>
public sealed class PartitionWriteBatcher(TableClient table)
{
    /// <summary>Entities per transaction (the service's limit).</summary>
    public const int MaxEntitiesPerTransaction = 100;

    /// <summary>
    /// Estimated bytes per transaction. The service takes at most 4 MiB; entities holding an inline body may
    /// be tens of KiB each once encoded, so a transaction is closed well before that.
    /// </summary>
    public const int MaxBytesPerTransaction = 2 * 1024 * 1024;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Partition> partitions = new(StringComparer.Ordinal);

    /// <summary>
    /// Stores <paramref name="actions"/> (all in <paramref name="partitionKey"/>), alone or together with
    /// writes of other callers to the same partition. Completes when they are stored.
    /// <paramref name="estimatedBytes"/> is about how large the entities are on the wire, to keep
    /// transactions within the service's limits.
    /// </summary>
    /// <remarks>
    /// Not cancellable, on purpose: the write records something that already happened (a server's reply,
    /// an accepted submission), and a caller that stopped waiting might release its domain's lease before
    /// the write lands. Each request is bounded by the storage client's own timeouts and retries.
    /// </remarks>
    /// <exception cref="RequestFailedException">These actions could not be stored.</exception>
    public Task WriteAsync(string partitionKey, IReadOnlyList<TableTransactionAction> actions, int estimatedBytes)
    {
        if (actions.Count == 0)
        {
            return Task.CompletedTask;
        }
        var write = new PendingWrite(actions, estimatedBytes);
        while (true)
        {
            var partition = partitions.GetOrAdd(partitionKey, key => new Partition(key));
            lock (partition)
            {
                if (partition.Retired)
                {
                    continue; // emptied and removed meanwhile: take the partition's new state
                }
                partition.Waiting.Enqueue(write);
                if (!partition.Flushing)
                {
                    partition.Flushing = true;
                    _ = Task.Run(() => FlushAsync(partition), CancellationToken.None);
                }
            }
            return write.Done.Task;
        }
    }

    /// <summary>Sends what waits for <paramref name="partition"/>, a transaction at a time, until nothing does.</summary>
    private async Task FlushAsync(Partition partition)
    {
        while (true)
        {
            List<PendingWrite> batch;
            lock (partition)
            {
                if (partition.Waiting.Count == 0)
                {
                    partition.Flushing = false;
                    partition.Retired = true;
                    partitions.TryRemove(new KeyValuePair<string, Partition>(partition.Key, partition));
                    return;
                }
                batch = TakeBatch(partition.Waiting);
            }
            await SendAsync(batch);
        }
    }

    /// <summary>Whole callers' writes, in arrival order, up to the entity and byte limits (a single larger write goes alone).</summary>
    private static List<PendingWrite> TakeBatch(Queue<PendingWrite> waiting)
    {
        var batch = new List<PendingWrite> { waiting.Dequeue() };
        var entities = batch[0].Actions.Count;
        var bytes = batch[0].EstimatedBytes;
        while (waiting.TryPeek(out var next) && entities + next.Actions.Count <= MaxEntitiesPerTransaction && bytes + next.EstimatedBytes <= MaxBytesPerTransaction)
        {
            batch.Add(waiting.Dequeue());
            entities += next.Actions.Count;
            bytes += next.EstimatedBytes;
        }
        return batch;
    }

    private async Task SendAsync(List<PendingWrite> batch)
    {
        if (batch.Count == 1)
        {
            await SendAloneAsync(batch[0]);
            return;
        }
        try
        {
            await table.SubmitTransactionAsync(batch.SelectMany(w => w.Actions), CancellationToken.None);
            foreach (var write in batch)
            {
                write.Done.TrySetResult();
            }
        }
        catch (TableTransactionFailedException e) when (e.FailedTransactionActionIndex is { } index && e.Status is >= 400 and < 500 and not 408 and not 429)
        {
            // All or nothing failed because of one entity: its caller's writes go alone (and get their own
            // answer), the others go on together.
            var culprit = CallerOf(batch, index);
            await SendAloneAsync(culprit);
            await SendAsync(batch.Where(w => w != culprit).ToList());
        }
        catch (RequestFailedException e) when (e.Status is >= 400 and < 500 and not 408 and not 429)
        {
            // Refused for something in it, without saying what: find out by trying each caller's writes alone.
            foreach (var write in batch)
            {
                await SendAloneAsync(write);
            }
        }
        catch (Exception e)
        {
            // Storage unavailable, throttling after the client's retries, a timeout: nothing in particular is
            // wrong with any one write, and trying each alone would only add load. Every caller hears of it.
            foreach (var write in batch)
            {
                write.Done.TrySetException(e);
            }
        }
    }

    /// <summary>The write whose actions hold the transaction's action at <paramref name="index"/>.</summary>
    private static PendingWrite CallerOf(List<PendingWrite> batch, int index)
    {
        foreach (var write in batch)
        {
            if (index < write.Actions.Count)
            {
                return write;
            }
            index -= write.Actions.Count;
        }
        return batch[^1];
    }

    /// <summary>One caller's writes: a plain request for a single entity (cheaper than a one-entity transaction), else transactions of up to 100.</summary>
    private async Task SendAloneAsync(PendingWrite write)
    {
        try
        {
            if (write.Actions.Count == 1 && await TrySendSingleAsync(write.Actions[0]))
            {
                write.Done.TrySetResult();
                return;
            }
            foreach (var chunk in write.Actions.Chunk(MaxEntitiesPerTransaction))
            {
                await table.SubmitTransactionAsync(chunk, CancellationToken.None);
            }
            write.Done.TrySetResult();
        }
        catch (Exception e)
        {
            write.Done.TrySetException(e);
        }
    }

    private async Task<bool> TrySendSingleAsync(TableTransactionAction action)
    {
        switch (action.ActionType)
        {
            case TableTransactionActionType.Add:
                await table.AddEntityAsync(action.Entity, CancellationToken.None);
                return true;
            case TableTransactionActionType.UpdateMerge:
                await table.UpdateEntityAsync(action.Entity, action.ETag, TableUpdateMode.Merge, CancellationToken.None);
                return true;
            case TableTransactionActionType.UpdateReplace:
                await table.UpdateEntityAsync(action.Entity, action.ETag, TableUpdateMode.Replace, CancellationToken.None);
                return true;
            default:
                return false;
        }
    }

    private sealed class Partition(string key)
    {
        public string Key { get; } = key;

        public Queue<PendingWrite> Waiting { get; } = new();

        public bool Flushing { get; set; }

        /// <summary>Removed from the map after it emptied; a writer that still holds it takes the new one.</summary>
        public bool Retired { get; set; }
    }

    private sealed class PendingWrite(IReadOnlyList<TableTransactionAction> actions, int estimatedBytes)
    {
        public IReadOnlyList<TableTransactionAction> Actions { get; } = actions;

        public int EstimatedBytes { get; } = estimatedBytes;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
