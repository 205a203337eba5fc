using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Telemetry;

/// <summary>
/// The end-to-end run (<see cref="EndToEndBenchmark"/>) with a backlog: N records across 1000 domains,
/// queued but not due for a day, are in the recipients table before the measured run, as after an outage
/// or with a large receiver deferring. Shows whether per-message cost grows with the queue's size, and
/// times one pass of the sweeper and of the queue sampler, which read over the whole backlog.
/// </summary>
internal static class BacklogBenchmark
{
    private const int BacklogDomains = 1000;

    public static Task<int> RunAsync(BenchmarkSettings settings, int sinkPort, string[] args)
    {
        var index = Array.IndexOf(args, "--backlog");
        var backlog = index >= 0 && index + 1 < args.Length && int.TryParse(args[index + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 10000;
        // A smaller measured run than the plain end-to-end default: the backlog, not the run, is the point.
        var measured = args.Contains("--messages") ? settings : settings with { Messages = 2000 };
        Console.WriteLine($"backlog: {backlog} records across {BacklogDomains} domains, due in a day; then {measured.Messages} messages end to end");
        return EndToEndBenchmark.RunAsync(measured, sinkPort, new EndToEndHooks(
            "backlog",
            string.Create(CultureInfo.InvariantCulture, $"N={backlog}"),
            (storage, connection) => PreQueueAsync(storage, connection, backlog),
            (storage, _, worker, metrics) => SweepAndSampleAsync(storage, worker, metrics, backlog)));
    }

    /// <summary>
    /// Writes the backlog straight into the table in batch transactions of up to 100 records a domain, through
    /// a client of its own so none of it is counted. Submission has no not-before field, so the records are
    /// written as submission writes them (inline body, state queued) but with NextAttemptAt a day away.
    /// </summary>
    private static async Task PreQueueAsync(OutboundStorage storage, string connection, int backlog)
    {
        var clock = Stopwatch.StartNew();
        var table = new TableClient(connection, storage.Options.RecipientsTable);
        var body = Encoding.ASCII.GetBytes("From: <bench@sender.bench.test>\r\nSubject: backlog\r\n\r\nlater\r\n");
        var now = DateTimeOffset.UtcNow;
        var due = now.AddDays(1);
        var events = JsonSerializer.Serialize(new[] { new DeliveryEvent(now, "queued", $"accepted {body.Length} bytes") });
        var batches = Enumerable.Range(0, backlog)
            .GroupBy(i => i % BacklogDomains)
            .SelectMany(domain => domain.Chunk(100).Select(chunk => chunk.Select(i => new RecipientRecord
            {
                PartitionKey = $"b{domain.Key}.backlog.example",
                RowKey = string.Create(CultureInfo.InvariantCulture, $"backlog{i:D8}.0000"),
                MessageId = string.Create(CultureInfo.InvariantCulture, $"backlog{i:D8}"),
                Sender = "bench@sender.bench.test",
                Recipient = string.Create(CultureInfo.InvariantCulture, $"user{i}@b{domain.Key}.backlog.example"),
                Body = RecipientRecord.InlineBodyMarker,
                InlineBody = body,
                BodySize = body.Length,
                SubmittedAt = now,
                NextAttemptAt = due,
                Events = events,
            }).ToList()))
            .ToList();
        using var gate = new SemaphoreSlim(16);
        await Task.WhenAll(batches.Select(async batch =>
        {
            await gate.WaitAsync();
            try
            {
                await table.SubmitTransactionAsync(batch.Select(r => new TableTransactionAction(TableTransactionActionType.Add, r)));
            }
            finally
            {
                gate.Release();
            }
        }));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"backlog: {backlog} records written in {batches.Count} batches in {clock.Elapsed.TotalSeconds:F1} s (not counted)"));
    }

    /// <summary>
    /// One pass each of the wake-up sweeper and the queue sampler, as their timers run them, over the backlog.
    /// Azurite answers the sweeper's filter (nothing due) with one empty page, where Azure Table storage
    /// scans the partitions and may return empty pages with continuation tokens: the sweeper's figures here
    /// are a lower bound. The sampler reads every queued record, up to its page cap (QueueSampleMaxPages).
    /// </summary>
    private static async Task SweepAndSampleAsync(OutboundStorage storage, CloudDelivery.Azure.WakeUps.WakeUpWorker worker, QueueMetrics metrics, int backlog)
    {
        var before = storage.Counter.Count;
        var clock = Stopwatch.StartNew();
        var woken = await worker.SweepAsync(CancellationToken.None);
        clock.Stop();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sweeper: one pass over a backlog of {backlog} in {clock.Elapsed.TotalMilliseconds:F0} ms, {storage.Counter.Count - before} storage transactions, {woken} wake-ups sent"));

        var sampler = new QueueSampler(storage, metrics, new TelemetryOptions(), TimeProvider.System);
        before = storage.Counter.Count;
        clock.Restart();
        var snapshot = await sampler.SampleAsync(CancellationToken.None);
        clock.Stop();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"queue sampler: one pass over a backlog of {backlog} in {clock.Elapsed.TotalMilliseconds:F0} ms, {storage.Counter.Count - before} storage transactions; {snapshot}"));
    }
}
