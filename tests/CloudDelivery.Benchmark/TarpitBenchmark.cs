using System.Globalization;
using System.Net;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;

/// <summary>
/// The engine alone, with one hostile receiver among healthy ones: M healthy domains on the sink plus one
/// domain whose MX tarpits (a slow reply to every command, 421 to MAIL). 20 % of the messages go to the
/// tarpit. A solo pass (the healthy messages only) and a mixed pass (the same healthy messages plus the
/// tarpit's) measure the healthy domains' throughput, to show how much one slow peer costs the others.
/// </summary>
internal static class TarpitBenchmark
{
    /// <summary>The tarpit's pace: every reply waits this long, so a session lasts greeting + EHLO + MAIL = 3 of them.</summary>
    private static readonly TimeSpan TarpitInterval = TimeSpan.FromSeconds(1);

    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort)
    {
        // The engine dials one SmtpPort for every host (DeliveryEngineOptions has no per-host port), so the
        // tarpit listens on the same port number at another loopback address: 127.0.0.2, within 127.0.0.0/8.
        var tarpitAddress = IPAddress.Parse("127.0.0.2");
        await using var tarpit = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions
        {
            Address = tarpitAddress,
            Port = sinkPort,
            KeepMessages = false,
            Hostname = "mx.tarpit.bench.example",
            Hostility = SmtpHostility.Tarpit,
            HostileInterval = TarpitInterval,
        });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tarpit: {tarpitAddress}:{sinkPort}, {TarpitInterval.TotalSeconds:F1} s before every reply, 421 to MAIL"));

        var zone = new DnsZone().AddWarmDomains(settings.Domains);
        zone.AddMx("tarpit.bench.example", 10, "mx.tarpit.bench.example").AddA("mx.tarpit.bench.example", tarpitAddress.ToString());
        await using var dns = await LoopbackDnsServer.StartAsync(zone);
        using var engine = DeliveryEngine.Create(
            new DeliveryEngineOptions { EhloHostname = "bench.loopback.test", SmtpPort = sinkPort, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate },
            new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint },
            new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = 1, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate }); // nothing listens on port 1; no domain publishes MTA-STS

        // 20 % of the N messages to the tarpit, the other 80 % spread over the healthy domains; both passes
        // carry the same healthy messages, so their rates compare directly.
        var body = BenchmarkMessages.Make(settings.Size);
        var tarpitMessages = settings.Messages / 5;
        var healthyMessages = settings.Messages - tarpitMessages;
        var healthy = Enumerable.Range(0, settings.Domains).Select(d => Request($"d{d}.bench.example", healthyMessages / settings.Domains + (d < healthyMessages % settings.Domains ? 1 : 0), body)).ToArray();
        var hostile = Request("tarpit.bench.example", tarpitMessages, body);

        // An unmeasured warm-up pass first (JIT, DNS cache, sink connections): otherwise the solo pass pays
        // the cold start alone and the ratio says more about start-up than about the tarpit.
        await PassAsync(engine, settings, healthy, null);
        var solo = await PassAsync(engine, settings, healthy, null);
        solo.Run.Print("tarpit", "solo", "healthy domains only");
        var mixed = await PassAsync(engine, settings, healthy, hostile);
        mixed.Run.Print("tarpit", "mixed", string.Create(CultureInfo.InvariantCulture, $"healthy domains' rate while {tarpitMessages} messages sit at the tarpit"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tarpit pass: {mixed.TarpitDelivered}/{tarpitMessages} delivered (none expected: 421), tarpit done after {mixed.TarpitElapsed.TotalSeconds:F1} s over {mixed.TarpitConnections} connections; {tarpit.ConnectionCount} connections reached the tarpit"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tarpit healthy ratio={mixed.Run.MessagesPerSecond / Math.Max(solo.Run.MessagesPerSecond, 1e-9):F2}"));
        return solo.Run.Messages == healthyMessages && mixed.Run.Messages == healthyMessages ? 0 : 1;
    }

    private static DeliveryRequest Request(string domain, int count, byte[] body) => new()
    {
        Destination = NextHop.Parse(domain),
        Messages = Enumerable.Range(0, count).Select(i => new OutboundMessage
        {
            Id = $"{domain}-{i}",
            Sender = EmailAddress.Parse("bench@sender.bench.test"),
            Recipients = [EmailAddress.Parse($"user{i}@{domain}")],
            Body = MessageBody.FromBytes(body),
        }).ToArray(),
    };

    /// <summary>
    /// One pass: the tarpit's request first (so it holds its slot from the start, as a stuck domain would),
    /// then the healthy ones, under the same gate as the engine benchmark. The measurement stops when the
    /// last healthy domain is done; the tarpit is awaited after, outside it.
    /// </summary>
    private static async Task<PassResult> PassAsync(DeliveryEngine engine, BenchmarkSettings settings, DeliveryRequest[] healthy, DeliveryRequest? hostile)
    {
        using var gate = new SemaphoreSlim(settings.Concurrency);
        async Task<DeliveryOutcome> DeliverAsync(DeliveryRequest request)
        {
            await gate.WaitAsync();
            try
            {
                return await engine.DeliverAsync(request, CancellationToken.None);
            }
            finally
            {
                gate.Release();
            }
        }

        var measurement = Measurement.Start();
        var tarpitClock = System.Diagnostics.Stopwatch.StartNew();
        var tarpitTask = hostile is null ? null : DeliverAsync(hostile);
        var outcomes = await Task.WhenAll(healthy.Select(DeliverAsync));
        var delivered = outcomes.Sum(o => o.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        var run = measurement.Stop(delivered);
        if (delivered != healthy.Sum(r => r.Messages.Count))
        {
            var sample = outcomes.SelectMany(o => o.Recipients).First(r => r.Status != RecipientStatus.Delivered);
            Console.WriteLine($"not delivered, e.g.: {sample.Recipient}: {sample.Reply}");
        }
        if (tarpitTask is null)
        {
            return new PassResult(run, 0, TimeSpan.Zero, 0);
        }
        var tarpitOutcome = await tarpitTask;
        return new PassResult(run, tarpitOutcome.Recipients.Count(r => r.Status == RecipientStatus.Delivered), tarpitClock.Elapsed, tarpitOutcome.Connections.Count);
    }

    private sealed record PassResult(MeasuredRun Run, int TarpitDelivered, TimeSpan TarpitElapsed, int TarpitConnections);
}
