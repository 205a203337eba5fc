using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Loopback.Storage;

/// <summary>
/// One hot domain among many (--hot-domain): half of the N messages go to hot.bench.example, the rest over
/// the warm domains. For K = 1, 2 and 4 shards (pinned with Queue:Shards, automatic sharding off so K is
/// exact) the whole backlog is stored first with no worker running, then one worker drains it: the hot
/// domain's rate is its messages over the time to its last delivery. Each K has its own Azurite. The hot
/// domain's MX is its own receiver on 127.0.0.3 (same port number as the sink), optionally answering the end
/// of DATA after --latency-ms, as a distant big receiver does; its shaping budget is 16 connections, so K
/// workers' sessions fit within it (K = 4 at 4 sessions per run).
/// </summary>
internal static class HotDomainBenchmark
{
    private const string HotDomain = "hot.bench.example";

    /// <summary>Within 127.0.0.0/8; the engine dials one port number for every host, so the hot MX differs by address.</summary>
    private const string HotAddress = "127.0.0.3";

    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort, string[] args)
    {
        var latencyIndex = Array.IndexOf(args, "--latency-ms");
        var latency = TimeSpan.FromMilliseconds(latencyIndex >= 0 && latencyIndex + 1 < args.Length ? int.Parse(args[latencyIndex + 1], CultureInfo.InvariantCulture) : 0);
        var hotMessages = settings.Messages / 2;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"hot domain: {hotMessages} of {settings.Messages} messages to {HotDomain} (MX {HotAddress}:{sinkPort}, {latency.TotalMilliseconds:F0} ms before the reply to DATA), the rest over {settings.Domains} domains; backlog stored first, then drained"));
        // An unmeasured warm-up pass first (JIT, connections), or K = 1 would pay the cold start alone.
        var warmUp = settings with { Messages = Math.Min(1000, settings.Messages) };
        await PassAsync(warmUp, sinkPort, warmUp.Messages / 2, 2, latency, report: false);
        // --shards K measures one shard count alone (for a profile of it); the ratios need all three.
        var shardsIndex = Array.IndexOf(args, "--shards");
        int[] counts = shardsIndex >= 0 && shardsIndex + 1 < args.Length ? [int.Parse(args[shardsIndex + 1], CultureInfo.InvariantCulture)] : [1, 2, 4];
        var rates = new Dictionary<int, double>();
        foreach (var shards in counts)
        {
            var (rate, ok) = await PassAsync(settings, sinkPort, hotMessages, shards, latency, report: true);
            rates[shards] = rate;
            if (!ok)
            {
                return 1;
            }
        }
        if (counts.Length == 1)
        {
            return 0;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"hot domain ratio k2/k1={rates[2] / Math.Max(rates[1], 1e-9):F2} k4/k1={rates[4] / Math.Max(rates[1], 1e-9):F2}"));
        return 0;
    }

    private static async Task<(double HotRate, bool Ok)> PassAsync(BenchmarkSettings settings, int sinkPort, int hotMessages, int shards, TimeSpan latency, bool report)
    {
        // Its own receiver per pass, so its connection figures are the pass's.
        await using var hotSink = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions
        {
            Address = IPAddress.Parse(HotAddress),
            Port = sinkPort,
            KeepMessages = false,
            Hostname = "mx.hot.bench.example",
            AdvertiseStartTls = settings.Tls,
            Certificate = settings.Tls ? BenchmarkCertificates.SelfSigned("mx.hot.bench.example", settings.Rsa) : null,
            DataReplyLatency = latency,
        });
        using var azurite = await AzuriteProcess.StartAsync();
        var storage = new OutboundStorage(new OutboundStorageOptions { ConnectionString = azurite.ConnectionString });
        await storage.EnsureCreatedAsync(CancellationToken.None);
        var queue = new OutboundQueue(storage, new OutboundQueueOptions
        {
            WakeUpWindow = TimeSpan.FromMilliseconds(settings.WakeUpWindowMs),
            Shards = $"{HotDomain}={shards}",
            HotDomainBacklog = 0,
        });
        var zone = new DnsZone().AddWarmDomains(settings.Domains);
        zone.AddMx(HotDomain, 10, "mx.hot.bench.example").AddA("mx.hot.bench.example", HotAddress);
        await using var dns = await LoopbackDnsServer.StartAsync(zone);
        // The hot domain's budget on this instance: 16 connections, more than K = 4 runs open (4 each).
        var shaping = CloudDelivery.Shaping.TrafficShapingRules.Default.WithOverrides($$"""{"rules":[{"name":"hot","domains":["{{HotDomain}}"],"connections":16,"messagesPerConnection":1000}]}""");
        using var engine = DeliveryEngine.Create(
            new DeliveryEngineOptions { EhloHostname = "bench.loopback.test", SmtpPort = sinkPort, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate, Shaping = shaping },
            new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint },
            new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = 1, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate });
        using var metrics = new CloudDelivery.Azure.Telemetry.QueueMetrics();
        using var deliveredCount = new DeliveredCounter(metrics.Meter);
        var handler = new DomainDeliveryHandler(queue, engine, "bench.loopback.test", metrics: metrics);
        var worker = new WakeUpWorker(queue, handler, new WakeUpWorkerOptions { BatchSize = 32 });

        // The backlog: every message stored before any worker runs, so the drain measures delivery alone.
        var message = Encoding.ASCII.GetBytes("From: <bench@sender.bench.test>\r\nSubject: hot\r\n\r\n" + new string('x', Math.Max(0, settings.Size - 60)) + "\r\n");
        using (var gate = new SemaphoreSlim(64))
        {
            await Task.WhenAll(Enumerable.Range(0, settings.Messages).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    var recipient = i % 2 == 0 && i / 2 < hotMessages ? $"user{i}@{HotDomain}" : $"user{i}@d{i % settings.Domains}.bench.example";
                    await queue.SubmitAsync(new SubmissionRequest { Sender = "bench@sender.bench.test", Recipients = [recipient], Message = new MemoryStream(message) }, CancellationToken.None);
                }
                finally
                {
                    gate.Release();
                }
            }));
        }
        // Every wake-up visible (the trailing ones come a window after their burst).
        await Task.Delay(settings.WakeUpWindowMs + 500);

        var hotBefore = hotSink.MessagesAccepted;
        var measurement = Measurement.Start(storage.Counter);
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var running = worker.RunAsync(stop.Token);
        var hotDone = TimeSpan.Zero;
        // The end of the hot domain's deliveries is looked for every 20 ms (the receiver counts, it does not
        // signal): at most 20 ms late over a drain of seconds. The end of all is signalled.
        var allDelivered = deliveredCount.WaitForAsync(settings.Messages, TimeSpan.FromMinutes(5));
        while (!allDelivered.IsCompleted && hotDone == TimeSpan.Zero)
        {
            if (hotSink.MessagesAccepted - hotBefore >= hotMessages)
            {
                hotDone = clock.Elapsed;
            }
            await Task.WhenAny(allDelivered, Task.Delay(20));
        }
        await allDelivered;
        clock.Stop();
        var all = measurement.Stop(deliveredCount.Count);
        await stop.CancelAsync();
        await running;
        var hotDelivered = hotSink.MessagesAccepted - hotBefore;
        if (hotDone == TimeSpan.Zero)
        {
            hotDone = clock.Elapsed;
        }
        var hotRate = hotDelivered / Math.Max(hotDone.TotalSeconds, 1e-9);
        if (!report)
        {
            return (hotRate, true);
        }
        var variant = string.Create(CultureInfo.InvariantCulture, $"k{shards}{(latency > TimeSpan.Zero ? $"-latency{latency.TotalMilliseconds:F0}ms" : string.Empty)}{(settings.Tls ? "-" + settings.Transport : string.Empty)}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"hot domain {variant}: {hotDelivered}/{hotMessages} to {HotDomain} in {hotDone.TotalSeconds:F2} s: {hotRate:F0} messages/s over {hotSink.PeakConcurrentConnections} connections at most; all {deliveredCount.Count}/{settings.Messages} in {clock.Elapsed.TotalSeconds:F2} s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT mode=hot-domain variant={variant} rate={hotRate:F0} cpu_us={all.CpuMicrosecondsPerMessage:F0} peak_mib={all.PeakWorkingSet / 1048576} tx={all.TransactionsPerMessage ?? 0:F2}"));
        all.Print("hot-domain-all", variant, "every domain's deliveries, hot and warm, in the same drain");
        return (hotRate, hotDelivered == hotMessages && deliveredCount.Count == settings.Messages);
    }
}
