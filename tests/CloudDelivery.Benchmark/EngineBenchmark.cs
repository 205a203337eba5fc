using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Messages;

/// <summary>
/// The engine alone: N messages of S bytes to M domains, held in memory, delivered into the sink on
/// <c>sinkPort</c> (plaintext, or STARTTLS with <c>--tls</c>), M domains in parallel.
/// </summary>
internal static class EngineBenchmark
{
    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort)
    {
        var zone = new DnsZone().AddWarmDomains(settings.Domains);
        await using var dns = await LoopbackDnsServer.StartAsync(zone);
        using var engine = DeliveryEngine.Create(
            new DeliveryEngineOptions { EhloHostname = "bench.loopback.test", SmtpPort = sinkPort, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate },
            new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint },
            new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = 1, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate }); // nothing listens on port 1; no domain publishes MTA-STS

        var body = BenchmarkMessages.Make(settings.Size);
        var requests = Enumerable.Range(0, settings.Domains).Select(d => new DeliveryRequest
        {
            Destination = NextHop.Parse($"d{d}.bench.example"),
            Messages = Enumerable.Range(0, settings.Messages / settings.Domains + (d < settings.Messages % settings.Domains ? 1 : 0)).Select(i => new OutboundMessage
            {
                Id = $"{d}-{i}",
                Sender = EmailAddress.Parse("bench@sender.bench.test"),
                Recipients = [EmailAddress.Parse($"user{i}@d{d}.bench.example")],
                Body = MessageBody.FromBytes(body),
            }).ToArray(),
        }).ToArray();

        var measurement = Measurement.Start();
        var outcomes = await BenchmarkEngine.DeliverAllAsync(engine, requests, settings.Concurrency);
        var delivered = outcomes.Sum(o => o.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        var run = measurement.Stop(delivered);
        var connections = outcomes.Sum(o => o.Connections.Count);
        // Which TLS each connection got: a --tls run that fell back to plaintext would measure the wrong thing.
        var tls = string.Join(", ", outcomes.SelectMany(o => o.Connections).GroupBy(c => c.TlsVersion ?? "plaintext").Select(g => $"{g.Count()} {g.Key}"));
        Console.WriteLine($"delivered {delivered}/{settings.Messages} over {connections} connections ({tls})");
        run.Print("engine", settings.Transport);
        if (delivered != settings.Messages)
        {
            var sample = outcomes.SelectMany(o => o.Recipients).First(r => r.Status != RecipientStatus.Delivered);
            Console.WriteLine($"not delivered, e.g.: {sample.Recipient}: {sample.Reply}");
        }

        return delivered == settings.Messages ? 0 : 1;
    }
}
