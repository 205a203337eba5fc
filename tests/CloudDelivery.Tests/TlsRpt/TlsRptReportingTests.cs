using System.IO.Compression;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Dkim;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Dkim;
using CloudDelivery.Tests.Queue;
using CloudDelivery.TlsRpt;
using CloudDelivery.TlsRpt.Https;
using MimeKit;

namespace CloudDelivery.Tests.TlsRpt;

[Collection(AzuriteCollection.Name)]
public class TlsRptReportingTests(AzuriteFixture azurite)
{
    private static readonly TlsRptReporter Reporter = new() { OrganizationName = "Loopback Sender", ContactInfo = "tls@sender.loopback.test", SubmitterDomain = "sender.loopback.test" };

    [Fact]
    public async Task Parallel_writers_add_up_exactly()
    {
        var storage = await azurite.NewStorageAsync();
        var store = new TlsRptResultStore(storage.TlsReports);
        var policy = new TlsRptPolicy { Type = TlsRptPolicyType.Sts, Domain = "busy.example", Strings = ["version: STSv1", "mode: enforce"], MxHosts = ["mx.busy.example"] };

        // 8 writers (as 8 function instances) × 10 runs, each run 3 successes, 1 failure, 2 kinds of detail.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(writer => Task.Run(async () =>
        {
            var store = new TlsRptResultStore(storage.TlsReports);
            for (var run = 0; run < 10; run++)
            {
                var result = new TlsRptResult(policy);
                result.Add(3, 1, new TlsRptFailureDetails { ResultType = TlsRptResultType.CertificateExpired, ReceivingMxHostname = "mx.busy.example" }, new TlsRptFailureDetails { ResultType = TlsRptResultType.StartTlsNotSupported, ReceivingIp = $"192.0.2.{writer}" });
                var host = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, "mx.busy.example");
                host.Add(3, 1);
                await store.RecordAsync("busy.example", result, [host], CancellationToken.None);
            }
        })));

        var stored = await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None);
        var sts = Assert.Single(stored, s => !s.IsHost).Result;
        Assert.Equal(240, sts.Summary.TotalSuccessfulSessionCount);
        Assert.Equal(80, sts.Summary.TotalFailureSessionCount);
        Assert.Equal(80, Assert.Single(sts.FailureDetails, d => d.ResultType == TlsRptResultType.CertificateExpired).FailedSessionCount);
        var perWriter = sts.FailureDetails.Where(d => d.ResultType == TlsRptResultType.StartTlsNotSupported).ToList();
        Assert.Equal(8, perWriter.Count);
        Assert.All(perWriter, d => Assert.Equal(10, d.FailedSessionCount));
        Assert.Equal(240, Assert.Single(stored, s => s.IsHost).Result.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task A_writer_merges_into_what_it_wrote_last_with_one_conditional_write_and_rereads_after_a_conflict()
    {
        var storage = await azurite.NewStorageAsync();
        var store = new TlsRptResultStore(storage.TlsReports);
        var other = new TlsRptResultStore(storage.TlsReports);
        var run = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, "cached.example");
        run.Add(1, 0);

        await store.RecordAsync("cached.example", run, [], CancellationToken.None);
        var before = storage.Counter.Count;
        await store.RecordAsync("cached.example", run, [], CancellationToken.None);
        Assert.Equal(1, storage.Counter.Count - before);

        // Another instance writes in between: the stale ETag fails, the writer re-reads and loses nothing.
        await other.RecordAsync("cached.example", run, [], CancellationToken.None);
        await store.RecordAsync("cached.example", run, [], CancellationToken.None);
        var stored = Assert.Single(await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None));
        Assert.Equal(4, stored.Result.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task Daily_report_arrives_by_mail_and_https_once_and_failed_posts_are_retried()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var network = world.Network;
        // weak.loopback.test: MTA-STS in testing mode, but its MX offers no STARTTLS: delivered, reported as a failure.
        network.Zone.AddMx("weak.loopback.test", 10, "mx.weak.loopback.test");
        var weakMx = await network.AddMxServerAsync("mx.weak.loopback.test", withCertificate: false);
        network.PublishMtaSts("weak.loopback.test", "testing", ["mx.weak.loopback.test"]);
        // strong.loopback.test: enforced policy, valid certificate: successes only.
        network.Zone.AddMx("strong.loopback.test", 10, "mx.strong.loopback.test");
        var strongMx = await network.AddMxServerAsync("mx.strong.loopback.test");
        network.PublishMtaSts("strong.loopback.test", "enforce", ["mx.strong.loopback.test"]);
        // Where reports go: a mailbox domain and an HTTPS collector.
        network.Zone.AddMx("reports.loopback.test", 10, "mx.reports.loopback.test");
        var reportsMx = await network.AddMxServerAsync("mx.reports.loopback.test");
        var collectorAddress = LoopbackWorld.NewAddress();
        await using var collector = await ReportCollector.StartAsync(collectorAddress, network.Pki.Issue(["collector.loopback.test"]));
        network.Zone.AddA("collector.loopback.test", collectorAddress.ToString());
        network.Zone.AddTxt("_smtp._tls.weak.loopback.test", $"v=TLSRPTv1; rua=mailto:tls@reports.loopback.test,https://collector.loopback.test:{collector.Port}/tlsrpt");
        network.Zone.AddTxt("_smtp._tls.strong.loopback.test", "v=TLSRPTv1; rua=mailto:tls@reports.loopback.test");

        // Two delivery runs to weak.loopback.test (two sessions), one to strong.loopback.test.
        await world.SubmitAsync("app@sender.loopback.test", ["a@weak.loopback.test"]);
        await world.DrainAsync();
        await world.SubmitAsync("app@sender.loopback.test", ["b@weak.loopback.test"]);
        await world.SubmitAsync("app@sender.loopback.test", ["c@strong.loopback.test"]);
        await world.DrainAsync();
        Assert.Equal(2, weakMx.Messages.Count);
        Assert.Single(strongMx.Messages);

        var day = DateOnly.FromDateTime(world.Time.GetUtcNow().UtcDateTime);
        world.Time.Advance(TimeSpan.FromDays(1));
        collector.FailNext(1);
        var sender = new TlsRptReportSender(world.TlsResults, world.Queue, world.Engine.Resolver, new TlsRptHttpsPoster(world.Engine.Resolver, world.Engine.Options.AddressPolicy, world.Engine.Options.ExtraTrustRoots, world.Time), Reporter, new TlsRptOptions { StartJitter = TimeSpan.Zero });

        var first = await sender.RunAsync(CancellationToken.None);
        await world.DrainAsync();

        // Two reports by mail (one per recipient domain); the post failed and is left for the next run.
        Assert.Equal(["strong.loopback.test", "weak.loopback.test"], first.Where(o => o.Skipped is null).Select(o => o.Report.PolicyDomain).Order());
        Assert.Equal(2, reportsMx.Messages.Count);
        Assert.Empty(collector.Posts);
        var weakReport = ParseReport(reportsMx.Messages.Select(m => MimeMessage.Load(new MemoryStream(m.Data))).Single(m => m.Headers["TLS-Report-Domain"] == "weak.loopback.test"));
        Assert.Empty(TlsRptSchema.Errors(weakReport));
        var policy = Assert.Single(JsonDocument.Parse(weakReport).RootElement.GetProperty("policies").EnumerateArray(), p => p.GetProperty("policy").GetProperty("policy-type").GetString() == "sts");
        // As mox: no STARTTLS under a testing policy is noted as a failure detail of each of the two sessions.
        var detail = Assert.Single(policy.GetProperty("failure-details").EnumerateArray());
        Assert.Equal(TlsRptResultType.StartTlsNotSupported, detail.GetProperty("result-type").GetString());
        Assert.Equal(2, detail.GetProperty("failed-session-count").GetInt64());
        Assert.Equal("mx.weak.loopback.test", detail.GetProperty("receiving-mx-hostname").GetString());
        Assert.Equal($"{day:yyyyMMdd}.weak.loopback.test@sender.loopback.test", JsonDocument.Parse(weakReport).RootElement.GetProperty("report-id").GetString());

        var second = await sender.RunAsync(CancellationToken.None);
        await world.DrainAsync();

        // The retry posts once; nothing is mailed twice.
        var post = Assert.Single(collector.Posts);
        Assert.Equal("application/tlsrpt+gzip", post.ContentType);
        Assert.Equal(weakReport, Gunzip(post.Body));
        Assert.Equal(2, reportsMx.Messages.Count);
        await sender.RunAsync(CancellationToken.None);
        Assert.Single(collector.Posts);

        // The report mails' own deliveries are not counted (no reports about reports), and they got no DSN.
        var today = await world.TlsResults.ListAsync(day.AddDays(1), CancellationToken.None);
        Assert.DoesNotContain(today, r => r.RecipientDomain == "reports.loopback.test");
    }

    [Fact]
    public async Task Domains_without_a_record_get_no_report_and_a_dry_run_sends_nothing()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("quiet.loopback.test", 10, "mx.quiet.loopback.test");
        await world.Network.AddMxServerAsync("mx.quiet.loopback.test");
        world.Network.Zone.AddMx("loud.loopback.test", 10, "mx.loud.loopback.test");
        await world.Network.AddMxServerAsync("mx.loud.loopback.test");
        world.Network.Zone.AddMx("reports.loopback.test", 10, "mx.reports.loopback.test");
        var reportsMx = await world.Network.AddMxServerAsync("mx.reports.loopback.test");
        world.Network.Zone.AddTxt("_smtp._tls.loud.loopback.test", "v=TLSRPTv1; rua=mailto:tls@reports.loopback.test");
        await world.SubmitAsync("app@sender.loopback.test", ["a@quiet.loopback.test"]);
        await world.SubmitAsync("app@sender.loopback.test", ["a@loud.loopback.test"]);
        await world.DrainAsync();
        var day = DateOnly.FromDateTime(world.Time.GetUtcNow().UtcDateTime);
        var sender = TlsRptReportSender.Create(world.TlsResults, world.Queue, world.Engine, Reporter, new TlsRptOptions { StartJitter = TimeSpan.Zero });

        var dry = await sender.SendDayAsync(day, dryRun: true, CancellationToken.None);
        await world.DrainAsync();
        Assert.Empty(reportsMx.Messages);
        Assert.Equal("no single _smtp._tls TLSRPT record (RFC 8460 §3)", dry.Single(o => o.Report.PolicyDomain == "quiet.loopback.test").Skipped);
        var loud = dry.Single(o => o.Report.PolicyDomain == "loud.loopback.test");
        Assert.Empty(TlsRptSchema.Errors(loud.Report.ToJson()));
        Assert.Equal(["mailto:tls@reports.loopback.test"], loud.Destinations.Select(d => d.Destination));

        // The Functions timer, the next day: the report goes out.
        world.Time.Advance(TimeSpan.FromDays(1));
        await new CloudDelivery.Functions.TlsRptFunctions(sender).SendTlsReports(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);
        await world.DrainAsync();
        var mail = MimeMessage.Load(new MemoryStream(Assert.Single(reportsMx.Messages).Data));
        Assert.Equal("loud.loopback.test", mail.Headers["TLS-Report-Domain"]);

        // Past retention the day's results are deleted.
        world.Time.Advance(TimeSpan.FromDays(4));
        await sender.RunAsync(CancellationToken.None);
        Assert.Empty(await world.TlsResults.ListAsync(day, CancellationToken.None));
        Assert.Single(reportsMx.Messages);
    }

    [Fact]
    public async Task Report_mail_is_dkim_signed_and_verifies_after_delivery()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("signed.loopback.test", 10, "mx.signed.loopback.test");
        await world.Network.AddMxServerAsync("mx.signed.loopback.test");
        world.Network.Zone.AddMx("reports.loopback.test", 10, "mx.reports.loopback.test");
        var reportsMx = await world.Network.AddMxServerAsync("mx.reports.loopback.test");
        world.Network.Zone.AddTxt("_smtp._tls.signed.loopback.test", "v=TLSRPTv1; rua=mailto:tls@reports.loopback.test");
        await world.SubmitAsync("app@sender.loopback.test", ["a@signed.loopback.test"]);
        await world.DrainAsync();
        var key = DkimTestKey.Ed25519("sender.loopback.test");
        var signingQueue = new OutboundQueue(world.Storage, world.Queue.Options, world.Time, new DkimMessageSigner([key.ToKey()]));
        var sender = TlsRptReportSender.Create(world.TlsResults, signingQueue, world.Engine, Reporter, new TlsRptOptions { StartJitter = TimeSpan.Zero });

        world.Time.Advance(TimeSpan.FromDays(1));
        await sender.RunAsync(CancellationToken.None);
        await world.DrainAsync();

        var received = Assert.Single(reportsMx.Messages).Data;
        Assert.True(await DkimTestKey.VerifyAsync(received, key));
        Assert.Contains("tls-report-domain", DkimTestKey.Tags(received)["h"], StringComparison.OrdinalIgnoreCase);
        var tampered = (byte[])received.Clone();
        var at = Array.IndexOf(tampered, (byte)'R', tampered.Length / 2);
        tampered[at] = (byte)'S';
        Assert.False(await DkimTestKey.VerifyAsync(tampered, key));
    }

    private static byte[] ParseReport(MimeMessage message)
    {
        var attachment = ((MultipartReport)message.Body!).OfType<MimePart>().Single(p => p.ContentType.MimeType == "application/tlsrpt+gzip");
        using var decoded = new MemoryStream();
        attachment.Content!.DecodeTo(decoded);
        return Gunzip(decoded.ToArray());
    }

    private static byte[] Gunzip(byte[] data)
    {
        using var gzip = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        using var plain = new MemoryStream();
        gzip.CopyTo(plain);
        return plain.ToArray();
    }
}
