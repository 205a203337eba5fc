using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Https;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Messages;

/// <summary>
/// The engine alone with nothing cached: one message to each of N distinct domains (<c>--messages</c> sets
/// both), so every delivery pays its own MX, A and <c>_mta-sts</c> TXT lookups, and 1 in 10 an MTA-STS policy
/// fetch over HTTPS. This is the cost of a first send to many new domains, which the warm
/// <see cref="EngineBenchmark"/> (few domains, many messages each) hides.
/// </summary>
internal static class ColdBenchmark
{
    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort)
    {
        var domains = settings.Messages;
        using var pki = TestPki.Create();
        await using var policies = await MtaStsPolicyServer.StartAsync();
        var zone = new DnsZone();
        var fetched = 0;
        var secured = 0;
        for (var d = 0; d < domains; d++)
        {
            var domain = $"c{d}.cold.example";
            var mx = $"mx.{domain}";
            zone.AddMx(domain, 10, mx).AddA(mx, "127.0.0.1");

            // Every domain publishes an MTA-STS TXT record, as many large receivers do, so the lookup is
            // never a cheap NXDOMAIN; 1 in 10 also serves its policy, which the engine then fetches.
            zone.AddTxt($"_mta-sts.{domain}", $"v=STSv1; id=bench{d}");
            if (d % 10 == 0)
            {
                // "mode: testing": the sink offers no STARTTLS, and an enforced policy would refuse it.
                zone.AddA($"mta-sts.{domain}", "127.0.0.1");
                policies.SetPolicy(domain, $"version: STSv1\r\nmode: testing\r\nmx: {mx}\r\nmax_age: 86400\r\n", pki.Issue([$"mta-sts.{domain}"]));
                fetched++;
            }

            // DNSSEC: DnsZone answers names marked secure with the AD bit, so 1 in 10 MX hosts are
            // authentic and the engine looks up (and gets an authentic empty answer for) their TLSA records.
            // No TLSA records are published: with them DANE would require STARTTLS, which the plaintext sink
            // cannot offer, and those messages would not be delivered.
            if (d % 10 == 5)
            {
                zone.MarkSecure(mx);
                secured++;
            }
        }
        await using var dns = await LoopbackDnsServer.StartAsync(zone);
        using var engine = DeliveryEngine.Create(
            new DeliveryEngineOptions { EhloHostname = "bench.loopback.test", SmtpPort = sinkPort, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate },
            new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint },
            new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = policies.EndPoint.Port, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate, ExtraTrustRoots = [pki.Root] });

        var body = BenchmarkMessages.Make(settings.Size);
        var requests = Enumerable.Range(0, domains).Select(d => new DeliveryRequest
        {
            Destination = NextHop.Parse($"c{d}.cold.example"),
            Messages =
            [
                new OutboundMessage
                {
                    Id = $"{d}",
                    Sender = EmailAddress.Parse("bench@sender.bench.test"),
                    Recipients = [EmailAddress.Parse($"user@c{d}.cold.example")],
                    Body = MessageBody.FromBytes(body),
                },
            ],
        }).ToArray();

        var measurement = Measurement.Start();
        var outcomes = await BenchmarkEngine.DeliverAllAsync(engine, requests, settings.Concurrency);
        var delivered = outcomes.Sum(o => o.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        var run = measurement.Stop(delivered);
        Console.WriteLine($"delivered {delivered}/{domains} to {domains} domains; {fetched} MTA-STS policies served, {policies.RequestCount} fetched; {secured} MX hosts DNSSEC-authentic");
        run.Print("cold", "plain", $"{domains} domains, 1 in 10 MTA-STS fetch, 1 in 10 DNSSEC MX, no TLSA");
        if (delivered != domains)
        {
            var sample = outcomes.SelectMany(o => o.Recipients).First(r => r.Status != RecipientStatus.Delivered);
            Console.WriteLine($"not delivered, e.g.: {sample.Recipient}: {sample.Reply}");
        }

        return delivered == domains ? 0 : 1;
    }
}
