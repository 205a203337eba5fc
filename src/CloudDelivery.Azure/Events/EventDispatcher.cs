using System.Collections.Concurrent;
using System.Threading.Channels;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// Publishes the outbox's events to the sinks, at least once, without ever holding up mail. Writers hand
/// it their events in memory as soon as they are stored (<see cref="Offer"/>); each sink has a lane that
/// sends batches of what it wants, in arrival order, and backs off (doubling, capped) while the sink
/// fails; an event a sink has not taken within <see cref="EventOptions.Retention"/> is parked for that sink.
/// Once every sink that wants an event took or parked it, its outbox row is deleted, in batches per
/// partition after <see cref="EventOptions.DeleteDelay"/>. The sweep (<see cref="SweepAsync"/>) adopts
/// rows nobody holds: a crash between write and publish, events dropped from a full memory, replays.
/// </summary>
public sealed class EventDispatcher
{
    /// <summary>The supervised loop that runs the sinks' lanes and the deletes.</summary>
    public const string LoopName = "events";

    /// <summary>The periodic sweep of the outbox.</summary>
    public const string SweepLoopName = "events-sweep";

    private readonly OutboundStorage storage;
    private readonly EventOptions options;
    private readonly TimeProvider time;
    private readonly EventMetrics? metrics;
    private readonly ILogger log;
    private readonly ConcurrentDictionary<(string Partition, string RowKey), Tracked> inHand = new();
    private readonly Channel<Tracked> deletes = Channel.CreateUnbounded<Tracked>();
    private readonly SinkLane[] lanes;

    public EventDispatcher(OutboundStorage storage, IEnumerable<IEventSink> sinks, EventOptions options, TimeProvider? time = null, EventMetrics? metrics = null, ILogger<EventDispatcher>? logger = null)
    {
        this.storage = storage;
        this.options = options;
        this.time = time ?? TimeProvider.System;
        this.metrics = metrics;
        log = (ILogger?)logger ?? NullLogger.Instance;
        Parked = new ParkedEvents(storage.ParkedEvents, storage.Recipients, this.time);
        lanes = sinks.Select(s => new SinkLane(this, s)).ToArray();
        metrics?.Observe(() => inHand.Count);
    }

    /// <summary>Whether any sink is configured: without one, no event is written and nothing runs.</summary>
    public bool HasSinks => lanes.Length > 0;

    public EventOptions Options => options;

    public ParkedEvents Parked { get; }

    /// <summary>Events held in memory (queued for a sink, or published and waiting for their delete).</summary>
    public int InHand => inHand.Count;

    /// <summary>
    /// Takes a stored event for publication. False when it is already held, or memory is full (the outbox
    /// still has it: the sweep brings it in later).
    /// </summary>
    public bool Offer(OutboxEntry entry)
    {
        if (inHand.Count >= options.MaxInMemory)
        {
            return false;
        }
        var restricted = entry.SinkNames;
        var wanting = lanes.Where(l => (restricted is null || restricted.Contains(l.Sink.Name, StringComparer.Ordinal)) && Wants(l.Sink, entry.Event)).ToList();
        var tracked = new Tracked(entry, wanting.Count);
        if (!inHand.TryAdd((entry.Partition, entry.RowKey), tracked))
        {
            return false;
        }
        if (wanting.Count == 0)
        {
            deletes.Writer.TryWrite(tracked);
        }
        foreach (var lane in wanting)
        {
            lane.Enqueue(tracked);
        }
        return true;
    }

    private bool Wants(IEventSink sink, OutboxEvent outboxEvent)
    {
        try
        {
            return sink.Wants(outboxEvent);
        }
        catch (Exception e)
        {
            // A sink's defect must not lose the event for the others, nor stop the writer: it is sent.
            log.LogError(e, "Sink {Sink} failed to say whether it wants event {Id}; it is sent to it", sink.Name, outboxEvent.Id);
            return true;
        }
    }

    /// <summary>Runs the sinks' lanes and the deletes until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var running = lanes.Select(l => l.RunAsync(cancellationToken)).Append(DeleteLoopAsync(cancellationToken)).ToList();
        await Task.WhenAll(running);
    }

    /// <summary>
    /// Adopts outbox rows older than <see cref="EventOptions.AdoptAfter"/> that this dispatcher does not
    /// hold (one scan of the outbox's row-key range over all partitions), until memory is full.
    /// </summary>
    /// <returns>Events adopted.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        if (!HasSinks)
        {
            return 0;
        }
        var before = time.GetUtcNow() - options.AdoptAfter;
        var filter = $"{EventOutbox.RowFilter} and {TableClient.CreateQueryFilter($"CreatedAt lt {before}")}";
        var adopted = 0;
        await foreach (var entity in storage.Recipients.QueryAsync<TableEntity>(filter, maxPerPage: 1000, cancellationToken: cancellationToken))
        {
            if (inHand.Count >= options.MaxInMemory)
            {
                break;
            }
            if (EventOutbox.FromEntity(entity) is { } entry && Offer(entry))
            {
                adopted++;
            }
        }
        if (adopted > 0)
        {
            log.LogInformation("Event sweep adopted {Count} events from the outbox", adopted);
        }
        return adopted;
    }

    /// <summary>One sink took or parked <paramref name="tracked"/>: when it was the last, its row goes.</summary>
    private void Settled(Tracked tracked)
    {
        if (Interlocked.Decrement(ref tracked.Remaining) == 0)
        {
            deletes.Writer.TryWrite(tracked);
        }
    }

    /// <summary>
    /// Deletes settled rows: waits <see cref="EventOptions.DeleteDelay"/> after the first, so that rows of
    /// the same partition settled meanwhile share a transaction, then deletes all that are waiting.
    /// </summary>
    private async Task DeleteLoopAsync(CancellationToken cancellationToken)
    {
        var reader = deletes.Reader;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await reader.WaitToReadAsync(cancellationToken);
                await Task.Delay(options.DeleteDelay, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            await DeleteWaitingAsync(cancellationToken);
        }
        // Stopping: what has been published goes now, briefly, so that a restart does not publish it again.
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await DeleteWaitingAsync(grace.Token);
    }

    private async Task DeleteWaitingAsync(CancellationToken cancellationToken)
    {
        var batch = new List<Tracked>();
        while (deletes.Reader.TryRead(out var tracked))
        {
            batch.Add(tracked);
        }
        var failed = new List<Tracked>();
        foreach (var partition in batch.GroupBy(t => t.Entry.Partition))
        {
            foreach (var chunk in partition.Chunk(PartitionWriteBatcher.MaxEntitiesPerTransaction))
            {
                if (await TryDeleteAsync(partition.Key, chunk, cancellationToken))
                {
                    foreach (var tracked in chunk)
                    {
                        inHand.TryRemove((tracked.Entry.Partition, tracked.Entry.RowKey), out _);
                    }
                }
                else
                {
                    failed.AddRange(chunk);
                }
            }
        }
        // Kept in hand (so the sweep does not publish them again) and tried again with the next deletes.
        foreach (var tracked in failed)
        {
            deletes.Writer.TryWrite(tracked);
        }
    }

    /// <summary>One transaction for the rows; when it fails, each alone, a row already gone counting as deleted (another instance took it).</summary>
    private async Task<bool> TryDeleteAsync(string partition, Tracked[] rows, CancellationToken cancellationToken)
    {
        try
        {
            if (rows.Length > 1)
            {
                try
                {
                    await storage.Recipients.SubmitTransactionAsync(rows.Select(r => new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(partition, r.Entry.RowKey), ETag.All)), cancellationToken);
                    return true;
                }
                catch (TableTransactionFailedException e) when (e.Status == 404)
                {
                    // A row is gone already: the rest go one by one below.
                }
            }
            foreach (var row in rows)
            {
                try
                {
                    await storage.Recipients.DeleteEntityAsync(partition, row.Entry.RowKey, ETag.All, cancellationToken);
                }
                catch (RequestFailedException e) when (e.Status == 404)
                {
                }
            }
            return true;
        }
        catch (Exception e) when (e is RequestFailedException or OperationCanceledException or IOException)
        {
            log.LogWarning(e, "Could not delete {Count} published events in partition {Partition}; trying again later", rows.Length, partition);
            return false;
        }
    }

    private TimeSpan Backoff(int failures) => BackoffAfter(failures, options.InitialBackoff, options.MaxBackoff);

    /// <summary>
    /// The wait after <paramref name="failures"/> failures in a row: <paramref name="initial"/>, doubling,
    /// capped at <paramref name="max"/>. Doubled step by step up to the cap, never by a power that could
    /// overflow TimeSpan (a long initial wait times 2^30 would, and throw in the lane's error path).
    /// </summary>
    internal static TimeSpan BackoffAfter(int failures, TimeSpan initial, TimeSpan max)
    {
        var wait = initial;
        for (var i = 1; i < failures && wait < max; i++)
        {
            wait = wait > max / 2 ? max : wait * 2;
        }
        return wait > max ? max : wait;
    }

    /// <summary>An event in hand and the sinks it still waits for.</summary>
    private sealed class Tracked(OutboxEntry entry, int remaining)
    {
        public OutboxEntry Entry { get; } = entry;

        public int Remaining = remaining;
    }

    /// <summary>One sink's queue of events, sent in arrival order, one batch at a time.</summary>
    private sealed class SinkLane(EventDispatcher dispatcher, IEventSink sink)
    {
        private readonly Channel<Tracked> intake = Channel.CreateUnbounded<Tracked>();
        private readonly List<Tracked> backlog = [];
        private int failures;
        private DateTimeOffset nextAttempt;

        public IEventSink Sink => sink;

        public void Enqueue(Tracked tracked) => intake.Writer.TryWrite(tracked);

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var time = dispatcher.time;
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    if (backlog.Count == 0)
                    {
                        backlog.Add(await intake.Reader.ReadAsync(cancellationToken));
                    }
                    while (intake.Reader.TryRead(out var more))
                    {
                        backlog.Add(more);
                    }
                    var wait = nextAttempt - time.GetUtcNow();
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait, time, cancellationToken);
                        continue;
                    }
                    await SendOneBatchAsync(cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    // Whatever a round meets, the lane goes on: its events are still in the outbox.
                    dispatcher.log.LogError(e, "Event lane of sink {Sink} failed a round; it goes on", sink.Name);
                    nextAttempt = time.GetUtcNow() + dispatcher.Backoff(Math.Max(1, failures));
                }
            }
        }

        private async Task SendOneBatchAsync(CancellationToken cancellationToken)
        {
            var time = dispatcher.time;
            var count = Math.Max(1, Math.Min(sink.MaxBatchSize, backlog.Count));
            // Within a batch, a recipient's events in sequence order (row keys sort by message, recipient, sequence).
            var batch = backlog.Take(count).OrderBy(t => t.Entry.Partition, StringComparer.Ordinal).ThenBy(t => t.Entry.RowKey, StringComparer.Ordinal).ToList();
            var tag = EventMetrics.SinkTag(sink.Name);
            try
            {
                await sink.SendAsync(batch.Select(t => t.Entry.Event).ToList(), cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                failures++;
                nextAttempt = time.GetUtcNow() + dispatcher.Backoff(failures);
                dispatcher.metrics?.Failed.Add(1, tag);
                dispatcher.log.LogWarning(e, "Sink {Sink} did not take {Count} events (failure {Failures} in a row); next try at {Next:u}", sink.Name, batch.Count, failures, nextAttempt);
                await ParkExpiredAsync(cancellationToken);
                return;
            }
            failures = 0;
            nextAttempt = default;
            backlog.RemoveRange(0, count);
            var now = time.GetUtcNow();
            dispatcher.metrics?.Published.Add(batch.Count, tag);
            foreach (var tracked in batch)
            {
                dispatcher.metrics?.PublishLatency.Record(Math.Max(0, (now - tracked.Entry.CreatedAt).TotalSeconds), tag);
                dispatcher.Settled(tracked);
            }
        }

        /// <summary>After a failure: events older than the retention are parked for this sink (then no longer sent to it).</summary>
        private async Task ParkExpiredAsync(CancellationToken cancellationToken)
        {
            var cutoff = dispatcher.time.GetUtcNow() - dispatcher.options.Retention;
            var expired = backlog.Where(t => t.Entry.CreatedAt <= cutoff).ToList();
            if (expired.Count == 0)
            {
                return;
            }
            try
            {
                await dispatcher.Parked.ParkAsync(sink.Name, expired.Select(t => t.Entry).ToList(), cancellationToken);
            }
            catch (Exception e) when (e is RequestFailedException or IOException)
            {
                dispatcher.log.LogWarning(e, "Could not park {Count} events of sink {Sink}; trying again after its next failure", expired.Count, sink.Name);
                return;
            }
            var parked = expired.ToHashSet();
            backlog.RemoveAll(parked.Contains);
            dispatcher.metrics?.Parked.Add(expired.Count, EventMetrics.SinkTag(sink.Name));
            dispatcher.log.LogWarning("Parked {Count} events of sink {Sink} after {Retention} of failures; `clouddelivery events replay` sends them again", expired.Count, sink.Name, dispatcher.options.Retention);
            foreach (var tracked in expired)
            {
                dispatcher.Settled(tracked);
            }
        }
    }
}
