using System.Net;
using System.Text;
using System.Text.Json;
using CloudDelivery.Addressing;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Https;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;

namespace CloudDelivery.Demo;

/// <summary>
/// The loopback demo (<c>dotnet run --project tests/CloudDelivery.Demo</c>): starts loopback peers (a
/// DNSSEC-signing DNS server, an MX with STARTTLS, DANE and REQUIRETLS, an MTA-STS policy server),
/// delivers a sample message through the engine and prints what happened, then does the same through the
/// durable queue (<see cref="QueueDemo"/>). Needs nothing but loopback and Azurite.
/// </summary>
internal static class LoopbackDemo
{
    /// <summary>Runs both parts of the demo; the exit code is the <c>deliver</c> command's (0: all delivered).</summary>
    public static async Task<int> RunAsync(TextWriter output, CancellationToken cancellationToken)
    {
        using var pki = TestPki.Create("CloudDelivery demo CA");
        var mxAddress = IPAddress.Parse("127.0.0.53");
        var policyAddress = IPAddress.Parse("127.0.0.54");
        var mxCertificate = pki.Issue(["mx.demo.example"]);

        await using var mx = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions
        {
            Address = mxAddress,
            Hostname = "mx.demo.example",
            Certificate = mxCertificate,
            AdvertiseRequireTls = true,
            RcptMax = 2,
        }, cancellationToken);
        await using var policyServer = await MtaStsPolicyServer.StartAsync(policyAddress, 0, cancellationToken);
        policyServer.SetPolicy("demo.example", "version: STSv1\r\nmode: enforce\r\nmx: mx.demo.example\r\nmax_age: 86400\r\n", pki.Issue(["mta-sts.demo.example"]));

        var zone = new DnsZone()
            .AddMx("demo.example", 10, "mx.demo.example")
            .AddA("mx.demo.example", mxAddress.ToString())
            .AddTlsa("_25._tcp.mx.demo.example", 3, 1, 1, TestPki.TlsaData(mxCertificate, 1, 1))
            .AddTxt("_mta-sts.demo.example", "v=STSv1; id=demo1")
            .AddA("mta-sts.demo.example", policyAddress.ToString())
            .AddTxt("_smtp._tls.demo.example", "v=TLSRPTv1; rua=mailto:tlsrpt@demo.example")
            .MarkSecure("demo.example");
        await using var dns = await LoopbackDnsServer.StartAsync(zone, IPAddress.Loopback, 0, cancellationToken);

        await output.WriteLineAsync($"loopback peers: DNS {dns.EndPoint}, MX mx.demo.example {mx.EndPoint} (STARTTLS, REQUIRETLS, LIMITS RCPTMAX=2), MTA-STS policy server {policyServer.EndPoint}");
        await output.WriteLineAsync("zone demo.example is DNSSEC-signed (AD bit), has a DANE-EE TLSA record for the MX and an enforced MTA-STS policy");

        using var engine = DeliveryEngine.Create(
            new DeliveryEngineOptions
            {
                EhloHostname = "demo-sender.loopback.test",
                SmtpPort = mx.EndPoint.Port,
                AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate,
                ExtraTrustRoots = [pki.Root],
                ConnectTimeout = TimeSpan.FromSeconds(5),
                CommandTimeout = TimeSpan.FromSeconds(10),
            },
            new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint },
            new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = policyServer.EndPoint.Port, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate, ExtraTrustRoots = [pki.Root] });
        var message = Encoding.UTF8.GetBytes(
            "From: Demo Sender <demo@sender.example>\r\nTo: alice@demo.example, bob@demo.example, carol@demo.example\r\n" +
            $"Subject: CloudDelivery demo\r\nDate: {DateTimeOffset.UtcNow:R}\r\nMessage-ID: <{Guid.NewGuid():N}@sender.example>\r\n" +
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello from CloudDelivery: delivered with REQUIRETLS over DANE-verified TLS.\r\n");
        var request = new DeliveryRequest
        {
            Destination = NextHop.Parse("demo.example"),
            Messages =
            [
                new OutboundMessage
                {
                    Id = "demo-1",
                    Sender = EmailAddress.Parse("demo@sender.example"),
                    Recipients = [EmailAddress.Parse("alice@demo.example"), EmailAddress.Parse("bob@demo.example"), EmailAddress.Parse("carol@demo.example")],
                    Body = MessageBody.FromBytes(message),
                    TlsRequirement = TlsRequirement.RequireTls,
                },
            ],
        };
        await output.WriteLineAsync("delivering one message with REQUIRETLS to alice, bob and carol @demo.example ...");
        var outcome = await engine.DeliverAsync(request, cancellationToken);
        var report = DeliveryReport.From([outcome]);
        await report.WriteTextAsync(output);
        foreach (var received in mx.Messages)
        {
            await output.WriteLineAsync($"the MX received transaction {received.TransactionNumber}: MAIL FROM:<{received.MailFrom}> {string.Join(' ', received.MailParameters)} to {string.Join(", ", received.Recipients)}, {received.Data.Length} bytes, byte-identical: {received.Data.AsSpan().SequenceEqual(message)}");
        }
        await output.WriteLineAsync("TLSRPT results (RFC 8460 JSON):");
        await output.WriteLineAsync(JsonSerializer.Serialize(report.TlsRpt, DeliveryReport.JsonOptions));
        if (report.ExitCode != 0)
        {
            return report.ExitCode;
        }

        // Part two: the same destination through the durable queue, as `serve` runs it.
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, pki.RootPem, cancellationToken);
        try
        {
            return await QueueDemo.RunAsync(output, dns.EndPoint, mx, policyServer.EndPoint.Port, caFile, message, cancellationToken);
        }
        finally
        {
            File.Delete(caFile);
        }
    }
}
