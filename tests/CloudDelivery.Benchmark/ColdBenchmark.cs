using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Https;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Messages;

/// <summary>
/// The engine alone with nothing cached: one message to each of N distinct domains (<c>--messages</c> sets
/// both), so every delivery pays its own MX, A and <c>_mta-sts</c> TXT lookups, 1 in 10 an MTA-STS policy
/// fetch over HTTPS, and 1 in 10 the DANE path (authentic MX, TLSA lookup, STARTTLS, verification). This is the cost of a first send to many new domains, which the warm
/// <see cref="EngineBenchmark"/> (few domains, many messages each) hides.
/// </summary>
internal static class ColdBenchmark
{
    private const string DaneSinkAddress = "127.0.0.4";

    public static async Task<int> RunAsync(BenchmarkSettings settings, int sinkPort)
    {
        var domains = settings.Messages;
        using var pki = TestPki.Create();
        using var daneCertificate = TestPki.SelfSigned("sink.dane.bench.test");
        var tlsa = TestPki.TlsaData(daneCertificate, 1, 1);
        // The engine dials one port number for every host: the DANE sink differs by address, within 127.0.0.0/8.
        await using var daneSink = await CloudDelivery.Loopback.Smtp.LoopbackSmtpServer.StartAsync(new CloudDelivery.Loopback.Smtp.LoopbackSmtpServerOptions
        {
            Address = System.Net.IPAddress.Parse(DaneSinkAddress),
            Port = sinkPort,
            KeepMessages = false,
            Hostname = "sink.dane.bench.test",
            AdvertiseStartTls = true,
            Certificate = daneCertificate,
        });
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

            // DNSSEC and DANE: DnsZone answers names marked secure with the AD bit, so for 1 in 10 domains
            // the MX, the host's address and its TLSA record are authentic. The host is the DANE sink, which
            // offers STARTTLS with a self-signed certificate that the TLSA record pins (DANE-EE, SPKI
            // SHA-256: RFC 7672 §3.1.1), so those deliveries do the whole DANE path: TLSA lookup, STARTTLS,
            // the TLS 1.3 handshake and verification against the record.
            if (d % 10 == 5)
            {
                zone.MarkSecure(domain);
                zone.Remove(mx, "A").AddA(mx, DaneSinkAddress);
                zone.AddTlsa($"_25._tcp.{mx}", 3, 1, 1, tlsa);
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
        var dane = outcomes.SelectMany(o => o.Connections).Count(c => c.Verification == CloudDelivery.Smtp.CertificateVerification.DaneEe);
        Console.WriteLine($"delivered {delivered}/{domains} to {domains} domains; {fetched} MTA-STS policies served, {policies.RequestCount} fetched; {secured} domains DNSSEC-signed with TLSA, {dane} connections verified by DANE-EE, {daneSink.MessagesAccepted} messages at the DANE sink");
        run.Print("cold", "dane-1-in-10", $"{domains} domains, 1 in 10 MTA-STS fetch, 1 in 10 DNSSEC with TLSA over STARTTLS");
        if (delivered != domains)
        {
            var sample = outcomes.SelectMany(o => o.Recipients).First(r => r.Status != RecipientStatus.Delivered);
            Console.WriteLine($"not delivered, e.g.: {sample.Recipient}: {sample.Reply}");
        }

        return delivered == domains ? 0 : 1;
    }
}
