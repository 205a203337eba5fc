using System.Globalization;
using System.Net.Http.Headers;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Storage;
using Microsoft.Extensions.DependencyInjection;

/// <summary>
/// End to end with submission over HTTP, as applications submit: Azurite, the real <c>serve</c> host in
/// process, and <c>--clients</c> concurrent HTTP clients POSTing raw messages to /api/messages, measured
/// until every message is delivered into the sink.
/// </summary>
internal static class HttpBenchmark
{
    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort, string[] args)
    {
        // --clients is this mode's own flag; BenchmarkSettings stays as the other modes use it. --tls is ignored.
        var index = Array.IndexOf(args, "--clients");
        var clients = index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : 32;
        using var azurite = await AzuriteProcess.StartAsync();
        // The warm-up pass goes to domains of its own, so the measured run pays its own lookups and connections.
        var zone = new DnsZone().AddWarmDomains(settings.Domains).AddWarmDomains(settings.Domains, "w");
        await using var dns = await LoopbackDnsServer.StartAsync(zone);
        var url = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        await using var app = ServeCommand.Build(url, new Dictionary<string, string?>
        {
            ["CloudDelivery:Hostname"] = "bench.loopback.test",
            ["CloudDelivery:Storage:ConnectionString"] = azurite.ConnectionString,
            ["CloudDelivery:Delivery:Resolver"] = dns.EndPoint.ToString(),
            // The loopback DNS server knows only the benchmark's zone, not the self-check's public names.
            ["CloudDelivery:Delivery:ResolverCheck:Enabled"] = "false",
            ["CloudDelivery:Delivery:SmtpPort"] = sinkPort.ToString(CultureInfo.InvariantCulture),
            ["CloudDelivery:Delivery:MtaStsHttpsPort"] = "1", // nothing listens on port 1; no domain publishes MTA-STS
            ["CloudDelivery:Delivery:AllowPrivateAddresses"] = "true",
            ["CloudDelivery:Queue:WakeUpWindow"] = TimeSpan.FromMilliseconds(settings.WakeUpWindowMs).ToString("c", CultureInfo.InvariantCulture),
            ["Logging:LogLevel:Default"] = "Warning",
            // No exporter: telemetry would cost CPU and queue-sampling storage reads that are not the service's work.
            ["CloudDelivery:Telemetry:Exporter"] = "none",
        });
        var storage = app.Services.GetRequiredService<OutboundStorage>();
        await storage.EnsureCreatedAsync(CancellationToken.None);

        // Deliveries are counted from the host's own metric (clouddelivery.recipients, result=delivered), as in --end-to-end.
        var metrics = app.Services.GetRequiredService<QueueMetrics>();
        using var deliveredCount = new DeliveredCounter(metrics.Meter);
        await app.StartAsync();

        var message = BenchmarkMessages.Make(settings.Size);
        // One HttpClient per client, each its own connection pool, as separate applications would be.
        var https = Enumerable.Range(0, clients).Select(_ => new HttpClient { BaseAddress = new Uri(url) }).ToArray();
        var tlsResults = app.Services.GetRequiredService<CloudDelivery.Azure.TlsRpt.TlsRptResultStore>();

        // POSTs `count` messages to domains `prefix`0… and waits for their delivery; returns how many were
        // refused and how long submitting took.
        async Task<(int Refused, TimeSpan Submitted)> SubmitAndDrainAsync(int count, string prefix, long deliveredBefore)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var next = -1;
            var refused = 0;
            await Task.WhenAll(https.Select(async http =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count)
                {
                    using var content = new ByteArrayContent(message);
                    content.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
                    using var response = await http.PostAsync($"/api/messages?from=bench@sender.bench.test&to=user{i}@{prefix}{i % settings.Domains}.bench.example", content);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref refused);
                    }
                }
            }));
            var submitted = clock.Elapsed;
            await deliveredCount.WaitForAsync(deliveredBefore + count - refused, TimeSpan.FromMinutes(5));
            // The TLSRPT results the runs kept in memory, written now so their cost is in the count (the host
            // writes them every 30 s, so a run this short would otherwise leave them out).
            await tlsResults.FlushAsync(CancellationToken.None);
            return (refused, submitted);
        }

        await StorageWarmUp.RunAsync(settings, storage, azurite.ConnectionString, "end-to-end http", async count => await SubmitAndDrainAsync(count, "w", deliveredCount.Count));
        var deliveredBefore = deliveredCount.Count;
        var kinds = new TransactionKindsSince(storage.Counter);
        var measurement = Measurement.Start(storage.Counter);
        var (refused, submitted) = await SubmitAndDrainAsync(settings.Messages, "d", deliveredBefore);
        var run = measurement.Stop(deliveredCount.Count - deliveredBefore);
        foreach (var http in https)
        {
            http.Dispose();
        }
        await app.StopAsync();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"http: {settings.Messages} POSTed by {clients} clients in {submitted.TotalSeconds:F1} s ({refused} refused), {run.Messages} delivered in {run.Elapsed.TotalSeconds:F1} s"));
        run.Print("end-to-end", "http", string.Create(CultureInfo.InvariantCulture, $"{clients} HTTP clients; storage transactions counted to the last delivery"));
        // By kind, as --end-to-end prints them (the measured run's).
        kinds.Print(settings.Messages);
        return run.Messages == settings.Messages ? 0 : 1;
    }
}
