using System.Diagnostics;
using System.Globalization;
using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Storage;
using Microsoft.Extensions.Logging;

/// <summary>
/// The whole service on one machine: submission → Azurite (blob, table, queue) → wake-up worker →
/// engine → Postfix's smtp-sink. Prints deliveries/second and storage transactions per delivered message.
/// </summary>
internal static class EndToEndBenchmark
{
    // hooks: another mode's work around the same run (see BacklogBenchmark); null: the plain end-to-end run.
    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort, EndToEndHooks? hooks = null)
    {
        using var azurite = await AzuriteProcess.StartAsync();
        {
            var connection = azurite.ConnectionString;
            var storage = new OutboundStorage(new OutboundStorageOptions { ConnectionString = connection });
            await storage.EnsureCreatedAsync(CancellationToken.None);
            if (hooks is not null)
            {
                await hooks.PrepareAsync(storage, connection);
            }
            // --events: every transition also goes through the outbox to a sink that accepts everything
            // (in process: the sink's own cost is not storage), with the service's default event settings.
            var eventSink = new AcceptingSink();
            var dispatcher = settings.Events ? new CloudDelivery.Azure.Events.EventDispatcher(storage, [eventSink], new CloudDelivery.Azure.Events.EventOptions()) : null;
            var outbox = dispatcher is null ? null : new CloudDelivery.Azure.Events.EventOutbox(new CloudDelivery.Azure.Events.RecipientEvents(dispatcher.Options, "bench.loopback.test"), TimeProvider.System, dispatcher);
            var queue = new OutboundQueue(storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.FromMilliseconds(settings.WakeUpWindowMs) }) { Events = outbox };

            // The warm-up pass goes to domains of its own, so the measured run pays its own lookups and connections.
            var zone = new DnsZone().AddWarmDomains(settings.Domains).AddWarmDomains(settings.Domains, "w");
            await using var dns = await LoopbackDnsServer.StartAsync(zone);
            using var engine = DeliveryEngine.Create(new DeliveryEngineOptions { EhloHostname = "bench.loopback.test", SmtpPort = sinkPort, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate }, new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint }, new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = 1, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate });
            // Deliveries are counted from the service's own metric (clouddelivery.recipients, result=delivered),
            // so watching the run costs the storage nothing; the table is checked once at the end.
            using var metrics = new CloudDelivery.Azure.Telemetry.QueueMetrics();
            using var deliveredCount = new DeliveredCounter(metrics.Meter);
            // As the service runs: TLSRPT results are added after every run (RFC 8460) and written per flush interval, and counted here.
            var tlsResults = new CloudDelivery.Azure.TlsRpt.TlsRptResultStore(storage.TlsReports, TimeProvider.System) { FlushInterval = new CloudDelivery.Azure.TlsRpt.TlsRptOptions().ResultsFlushInterval };
            // Warnings and errors of the worker and the runs on the console: a run that fails or a wake-up that
            // is retried is part of what the benchmark saw.
            using var loggers = Microsoft.Extensions.Logging.LoggerFactory.Create(logging => logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Warning));
            var handler = new DomainDeliveryHandler(queue, engine, "bench.loopback.test", loggers.CreateLogger<DomainDeliveryHandler>(), tlsResults: tlsResults, metrics: metrics);
            var worker = new WakeUpWorker(queue, handler, new WakeUpWorkerOptions { BatchSize = 32 }, loggers.CreateLogger<WakeUpWorker>());

            // Submission and delivery overlap, as in the running service: the worker polls from the start.
            using var stop = new CancellationTokenSource();
            var running = worker.RunAsync(stop.Token);
            var dispatching = dispatcher?.RunAsync(stop.Token) ?? Task.CompletedTask;
            var counter = new global::Azure.Data.Tables.TableClient(connection, storage.Options.RecipientsTable); // not counted: the benchmark's own reads

            var message = Encoding.ASCII.GetBytes("From: <bench@sender.bench.test>\r\nSubject: e2e\r\n\r\n" + new string('x', Math.Max(0, settings.Size - 60)) + "\r\n");
            async Task SubmitAsync(int count, string prefix)
            {
                using var gate = new SemaphoreSlim(64);
                await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
                {
                    await gate.WaitAsync();
                    try
                    {
                        await queue.SubmitAsync(new SubmissionRequest { Sender = "bench@sender.bench.test", Recipients = [$"user{i}@{prefix}{i % settings.Domains}.bench.example"], Message = new MemoryStream(message) }, CancellationToken.None);
                    }
                    finally
                    {
                        gate.Release();
                    }
                }));
            }

            Task WaitForDeliveriesAsync(long count, DateTime deadline) => deliveredCount.WaitForAsync(count, deadline - DateTime.UtcNow);

            await StorageWarmUp.RunAsync(settings, storage, connection, hooks?.Mode ?? "end-to-end", async count =>
            {
                var before = deliveredCount.Count;
                await SubmitAsync(count, "w");
                await WaitForDeliveriesAsync(before + count, DateTime.UtcNow.AddMinutes(5));
                await tlsResults.FlushAsync(CancellationToken.None);
            });
            var deliveredBefore = deliveredCount.Count;
            var eventsBefore = eventSink.Count;
            var transactionsBefore = storage.Counter.Count;
            var kinds = new TransactionKindsSince(storage.Counter);
            var measurement = Measurement.Start(storage.Counter);
            var clock = Stopwatch.StartNew();
            await SubmitAsync(settings.Messages, "d");
            var submitted = clock.Elapsed;
            var submitTransactions = storage.Counter.Count - transactionsBefore;

            var deadline = DateTime.UtcNow.AddMinutes(5);
            await WaitForDeliveriesAsync(deliveredBefore + settings.Messages, deadline);
            // As the host's flush loop would (every 30 s): the runs' TLSRPT results, written within the count.
            await tlsResults.FlushAsync(CancellationToken.None);
            clock.Stop();
            var run = measurement.Stop(deliveredCount.Count - deliveredBefore);
            // Every event published and its outbox row deleted: the whole cost of events is in the count.
            while (dispatcher is not null && (eventSink.Count - eventsBefore < 2L * settings.Messages || dispatcher.InHand > 0) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
            await stop.CancelAsync();
            await running;
            await dispatching;
            var transactions = storage.Counter.Count - transactionsBefore;
            var delivered = await CountDeliveredAsync(counter); // the warm-up's records are gone
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"end to end: {settings.Messages} submitted in {submitted.TotalSeconds:F1} s, {delivered} delivered in {clock.Elapsed.TotalSeconds:F1} s total: {delivered / clock.Elapsed.TotalSeconds:F0} deliveries/s"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"storage transactions: {transactions} ({(double)submitTransactions / settings.Messages:F2}/message to submit, {(double)transactions / Math.Max(1, delivered):F2}/delivered message in all)"));
            run.Print(hooks?.Mode ?? "end-to-end", hooks?.Variant ?? ((settings.Events ? "events" : "in-process") + (settings.Tls ? "-" + settings.Transport : "")), "storage transactions counted to the last delivery");
            // In Functions every wake-up sent is one queue-triggered execution; in-process submission costs none.
            var wakeUps = kinds["queue POST messages"];
            CostModel.Print(run, message.Length, (double)wakeUps / Math.Max(1, run.Messages));
            if (dispatcher is not null)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"events: {eventSink.Count} published in {eventSink.Batches} batches, {dispatcher.InHand} left in hand"));
            }
            kinds.Print(settings.Messages);
            if (hooks is not null)
            {
                await hooks.AfterAsync(storage, queue, worker, metrics);
            }
            return delivered == settings.Messages ? 0 : 1;
        }
    }

    private static async Task<int> CountDeliveredAsync(global::Azure.Data.Tables.TableClient table)
    {
        var count = 0;
        await foreach (var _ in table.QueryAsync<RecipientRecord>(r => r.State == RecipientState.Delivered, select: ["State"]))
        {
            count++;
        }
        return count;
    }
}

/// <summary>
/// Work another mode adds around the end-to-end run: <see cref="PrepareAsync"/> once storage exists, before
/// anything is measured; <see cref="AfterAsync"/> once the run is measured and the worker stopped.
/// </summary>
internal sealed record EndToEndHooks(
    string Mode,
    string Variant,
    Func<OutboundStorage, string, Task> PrepareAsync,
    Func<OutboundStorage, OutboundQueue, WakeUpWorker, CloudDelivery.Azure.Telemetry.QueueMetrics, Task> AfterAsync);

/// <summary>A sink that takes every batch at once and counts it.</summary>
internal sealed class AcceptingSink : CloudDelivery.Azure.Events.IEventSink
{
    private long count;
    private long batches;

    public string Name => "bench";

    public int MaxBatchSize => 100;

    public long Count => Interlocked.Read(ref count);

    public long Batches => Interlocked.Read(ref batches);

    public bool Wants(CloudDelivery.Azure.Events.OutboxEvent outboxEvent) => true;

    public Task SendAsync(IReadOnlyList<CloudDelivery.Azure.Events.OutboxEvent> batch, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref count, batch.Count);
        Interlocked.Increment(ref batches);
        return Task.CompletedTask;
    }
}
