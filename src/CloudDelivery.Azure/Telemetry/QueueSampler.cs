using Azure;
using Azure.Data.Tables;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// Refreshes the snapshot the queue gauges report. Observable gauges are read on every metric collection
/// (every minute or more often, per exporter and instance), so they never touch storage themselves: this
/// sampler takes one bounded pass at most every <see cref="TelemetryOptions.QueueSampleInterval"/>.
/// One pass costs two queue property reads and a projected query over the records still queued, one table
/// transaction per 1000 records, stopping after <see cref="TelemetryOptions.QueueSampleMaxPages"/> pages
/// (the record figures are then lower bounds and a warning is logged). <c>serve</c> runs it in a loop; in
/// Functions the timer function SampleQueue calls <see cref="SampleAsync"/> on <see cref="Schedule"/>.
/// </summary>
public sealed class QueueSampler
{
    /// <summary>
    /// The Functions timer schedule (six-field CRON): every five minutes, the same minutes as the stranded-record
    /// and event-outbox sweeps, so an idle Flex Consumption app wakes once per five minutes for all three
    /// rather than every minute for this one. Keep <see cref="TelemetryOptions.QueueSampleInterval"/> at
    /// least this period there: the gauges report a snapshot for three intervals.
    /// </summary>
    public const string Schedule = "0 */5 * * * *";

    // Only the columns the figures need: a projection keeps each page small (the Events and body columns
    // of a record can be kilobytes).
    private static readonly string[] Columns = [nameof(RecipientRecord.Attempts), nameof(RecipientRecord.SubmittedAt), nameof(RecipientRecord.NextAttemptAt)];

    private readonly OutboundStorage storage;
    private readonly QueueMetrics metrics;
    private readonly TelemetryOptions options;
    private readonly TimeProvider time;
    private readonly ILogger log;

    /// <summary>Records per page: the service's maximum, so a pass takes as few transactions as it can. Tests make it small.</summary>
    internal int PageSize { get; init; } = 1000;

    /// <summary>How often <c>serve</c> samples (the Functions timer samples on <see cref="Schedule"/>).</summary>
    public TimeSpan Interval => options.QueueSampleInterval;

    public QueueSampler(OutboundStorage storage, QueueMetrics metrics, TelemetryOptions options, TimeProvider time, ILogger<QueueSampler>? logger = null)
    {
        this.storage = storage;
        this.metrics = metrics;
        this.options = options;
        this.time = time;
        log = (ILogger?)logger ?? NullLogger.Instance;
        metrics.Time = time;
        metrics.SnapshotLifetime = options.QueueSampleInterval * 3;
    }

    /// <summary>Samples unless the latest snapshot is younger than the interval; returns the snapshot in force.</summary>
    public async Task<QueueSnapshot> SampleIfDueAsync(CancellationToken cancellationToken)
    {
        if (metrics.Snapshot is { } latest && time.GetUtcNow() - latest.SampledAt < options.QueueSampleInterval)
        {
            return latest;
        }
        return await SampleAsync(cancellationToken);
    }

    /// <summary>Takes a sample now and hands it to the gauges.</summary>
    public async Task<QueueSnapshot> SampleAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        long queued = 0, deferred = 0;
        DateTimeOffset? oldestQueued = null, oldestDeferred = null;
        var pages = 0;
        var capped = false;
        // Final records (delivered, failed, expired, dropped) and the "~lease" rows lack State = 'queued',
        // so the service filters them out and they cost nothing but the scan itself.
        var query = storage.Recipients.QueryAsync<TableEntity>($"State eq '{RecipientState.Queued}'", maxPerPage: PageSize, select: Columns, cancellationToken: cancellationToken);
        await foreach (var page in query.AsPages(pageSizeHint: PageSize))
        {
            foreach (var entity in page.Values)
            {
                var attempted = (entity.GetInt32(nameof(RecipientRecord.Attempts)) ?? 0) > 0;
                var submitted = entity.GetDateTimeOffset(nameof(RecipientRecord.SubmittedAt)) ?? now;
                var due = (entity.GetDateTimeOffset(nameof(RecipientRecord.NextAttemptAt)) ?? now) <= now;
                if (attempted)
                {
                    deferred++;
                    if (due && (oldestDeferred is null || submitted < oldestDeferred))
                    {
                        oldestDeferred = submitted;
                    }
                }
                else
                {
                    queued++;
                    if (due && (oldestQueued is null || submitted < oldestQueued))
                    {
                        oldestQueued = submitted;
                    }
                }
            }
            if (++pages >= options.QueueSampleMaxPages && page.ContinuationToken is not null)
            {
                capped = true;
                break;
            }
        }
        if (capped)
        {
            log.LogWarning("Queue sample stopped after {Pages} pages: the queue gauges are lower bounds", pages);
        }
        var snapshot = new QueueSnapshot(
            now,
            queued,
            deferred,
            Age(oldestQueued),
            Age(oldestDeferred),
            await ApproximateCountAsync(storage.WakeUps, cancellationToken),
            await ApproximateCountAsync(storage.Poison, cancellationToken),
            capped);
        metrics.Snapshot = snapshot;
        return snapshot;

        TimeSpan Age(DateTimeOffset? oldest) => oldest is { } at && at < now ? now - at : TimeSpan.Zero;
    }

    private static async Task<long> ApproximateCountAsync(global::Azure.Storage.Queues.QueueClient queue, CancellationToken cancellationToken)
    {
        try
        {
            return (await queue.GetPropertiesAsync(cancellationToken)).Value.ApproximateMessagesCount;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // The poison queue exists only once something was poisoned (the Functions host creates it then).
            return 0;
        }
    }
}
