using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Queue;
using CloudDelivery.TlsRpt;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>The queue's metrics and RecipientResult events, from real deliveries through Azurite and loopback servers.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class QueueTelemetryTests(AzuriteFixture azurite)
{
    private const string Recipients = "clouddelivery.recipients";
    private const string Latency = "clouddelivery.recipient.latency";

    /// <summary>A handler for the world's queue that reports to <paramref name="metrics"/> and <paramref name="logs"/>.</summary>
    private static DomainDeliveryHandler Handler(QueueWorld world, QueueMetrics metrics, LogCapture logs)
    {
        var factory = LoggerFactory.Create(logging => logging.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        return new DomainDeliveryHandler(world.Queue, world.Engine, "mta.loopback.test", factory.CreateLogger<DomainDeliveryHandler>(), tlsResults: world.TlsResults, metrics: metrics);
    }

    [Fact]
    public async Task Delivered_recipient_is_counted_with_its_tls_posture_and_latency_and_logged_without_its_address()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("telemetry.example", 10, "mx.telemetry.example");
        await world.Network.AddMxServerAsync("mx.telemetry.example");
        using var metrics = new QueueMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        var logs = new LogCapture();
        const string body = "The quarterly figures are attached.";
        var submitted = await world.SubmitAsync("s@sender.example", ["alice@telemetry.example"], $"From: <s@sender.example>\r\nTo: <alice@telemetry.example>\r\nSubject: figures\r\n\r\n{body}\r\n");
        world.Time.Advance(TimeSpan.FromSeconds(30));

        await world.DrainAsync(Handler(world, metrics, logs));

        var counted = Assert.Single(capture.Of(Recipients));
        Assert.Equal(1, counted.Value);
        Assert.Equal("delivered", counted.Tag("result"));
        Assert.Equal("opportunistic", counted.Tag("tls"));
        Assert.False(counted.Tags.ContainsKey("reason"));
        var latency = Assert.Single(capture.Of(Latency));
        Assert.Equal(30, latency.Value, precision: 3);
        Assert.Equal("delivered", latency.Tag("result"));

        var logged = Assert.Single(logs.Entries, e => e.EventId.Name == "RecipientResult");
        Assert.Equal(LogLevel.Information, logged.Level);
        Assert.Equal(RecipientResultLog.EventIdValue, logged.EventId.Id);
        Assert.Equal(
            ["Attempt", "Category", "MessageId", "MxHost", "Reason", "RecipientDomain", "Result", "TlsPosture", "{OriginalFormat}"],
            logged.Properties.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(submitted.MessageId, logged.Properties["MessageId"]);
        Assert.Equal("telemetry.example", logged.Properties["RecipientDomain"]);
        Assert.Equal("mx.telemetry.example", logged.Properties["MxHost"]);
        Assert.Equal("1", logged.Properties["Attempt"]);
        Assert.Equal("delivered", logged.Properties["Result"]);
        Assert.Equal(string.Empty, logged.Properties["Reason"]);
        Assert.Equal("opportunistic", logged.Properties["TlsPosture"]);
        Assert.Equal(string.Empty, logged.Properties["Category"]);
        AssertPrivate(logs, "alice@telemetry.example", body);
    }

    [Fact]
    public async Task Failures_are_counted_with_the_status_class_or_the_local_reason()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("refuses.example", 10, "mx.refuses.example");
        await world.Network.AddMxServerAsync("mx.refuses.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.1.1", "no such user"));
        world.Network.Zone.AddMx("busy.example", 10, "mx.busy.example");
        await world.Network.AddMxServerAsync("mx.busy.example", o => o.OnRcpt = _ => new SmtpServerReply(451, "4.3.0", "try again later"));
        // An MX host without address records: the attempt ends in DNS before any connection.
        world.Network.Zone.AddMx("unresolved.example", 10, "mx.unresolved.example");
        using var metrics = new QueueMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        var logs = new LogCapture();
        await world.SubmitAsync("s@sender.example", ["bob@refuses.example"]);
        await world.SubmitAsync("s@sender.example", ["carol@busy.example"]);
        await world.SubmitAsync("s@sender.example", ["dave@unresolved.example"]);

        await world.DrainAsync(Handler(world, metrics, logs));

        // The fourth recipient is the DSN about bob to s@sender.example, a domain that does not exist: it
        // fails at once (5.1.2, found in DNS) rather than being deferred.
        var counted = capture.Of(Recipients);
        Assert.Equal(4, counted.Count);
        Assert.Single(counted, m => m.Tag("result") == "failed" && m.Tag("reason") == "5.1" && m.Tag("tls") == "opportunistic" && m.Tag("category") == "bad-mailbox");
        Assert.Single(counted, m => m.Tag("result") == "deferred" && m.Tag("reason") == "4.3" && m.Tag("tls") == "opportunistic" && m.Tag("category") == "network");
        Assert.Single(counted, m => m.Tag("result") == "deferred" && m.Tag("reason") == "dns" && m.Tag("tls") == "none" && m.Tag("category") == "network");
        Assert.Single(counted, m => m.Tag("result") == "failed" && m.Tag("reason") == "dns" && m.Tag("tls") == "none" && m.Tag("category") == "bad-domain");
        // Only final results have a latency.
        Assert.All(capture.Of(Latency), m => Assert.Equal("failed", m.Tag("result")));
        Assert.Equal(2, capture.Of(Latency).Count);
        var events = logs.Entries.Where(e => e.EventId.Name == "RecipientResult").ToList();
        Assert.Contains(events, e => e.Properties["RecipientDomain"] == "unresolved.example" && e.Properties["Reason"] == "dns" && e.Properties["TlsPosture"] == "none" && e.Properties["MxHost"] == "mx.unresolved.example");
        Assert.Contains(events, e => e.Properties["RecipientDomain"] == "refuses.example" && e.Properties["Result"] == "failed" && e.Properties["Reason"] == "5.1" && e.Properties["Category"] == "bad-mailbox");
        AssertPrivate(logs, "bob@refuses.example", "carol@busy.example", "dave@unresolved.example");
    }

    [Fact]
    public async Task Verified_tls_is_counted_as_dane_or_mtasts()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("dane.example", 10, "mx.dane.example").MarkSecure("dane.example");
        var certificate = TestPki.SelfSigned("unrelated-name.invalid");
        await world.Network.AddMxServerAsync("mx.dane.example", o => o.Certificate = certificate);
        world.Network.Zone.AddTlsa("_25._tcp.mx.dane.example", 3, 1, 1, TestPki.TlsaData(certificate, 1, 1));
        world.Network.Zone.AddMx("sts.example", 10, "mx.sts.example");
        world.Network.PublishMtaSts("sts.example", "enforce", ["mx.sts.example"]);
        await world.Network.AddMxServerAsync("mx.sts.example");
        using var metrics = new QueueMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        await world.SubmitAsync("s@sender.example", ["r@dane.example"]);
        await world.SubmitAsync("s@sender.example", ["r@sts.example"]);

        await world.DrainAsync(Handler(world, metrics, new LogCapture()));

        var counted = capture.Of(Recipients);
        Assert.Contains(counted, m => m.Tag("result") == "delivered" && m.Tag("tls") == "dane");
        Assert.Contains(counted, m => m.Tag("result") == "delivered" && m.Tag("tls") == "mtasts");
    }

    [Fact]
    public async Task Queue_gauges_report_the_sample_of_records_ages_and_queue_lengths()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("later.example", 10, "mx.later.example");
        await world.Network.AddMxServerAsync("mx.later.example", o => o.OnRcpt = _ => new SmtpServerReply(451, "4.3.0", "try again later"));
        using var metrics = new QueueMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        var options = new TelemetryOptions { QueueSampleInterval = TimeSpan.FromMinutes(1) };
        var sampler = new QueueSampler(world.Storage, metrics, options, world.Time);
        Assert.Empty(capture.Observe("clouddelivery.queue.records"));

        // A malformed wake-up goes to the poison queue.
        await world.Storage.WakeUps.SendMessageAsync("{not a wake-up");
        await new WakeUpWorker(world.Queue, world.Handler, new WakeUpWorkerOptions()).PollOnceAsync(CancellationToken.None);
        // One recipient attempted and deferred (its domain now has a lease row too), one never attempted.
        await world.SubmitAsync("s@sender.example", ["r@later.example"]);
        await world.DrainAsync();
        await world.SubmitAsync("s@sender.example", ["r@waiting.example"]);
        world.Time.Advance(TimeSpan.FromHours(2));

        var snapshot = await sampler.SampleAsync(CancellationToken.None);

        Assert.False(snapshot.Capped);
        var records = capture.Observe("clouddelivery.queue.records");
        Assert.Equal(1, records.Single(m => m.Tag("state") == "queued").Value);
        Assert.Equal(1, records.Single(m => m.Tag("state") == "deferred").Value);
        var ages = capture.Observe("clouddelivery.queue.oldest_ready_age");
        Assert.Equal(7200, ages.Single(m => m.Tag("state") == "queued").Value, precision: 3);
        Assert.Equal(7200, ages.Single(m => m.Tag("state") == "deferred").Value, precision: 3);
        var messages = capture.Observe("clouddelivery.queue.messages");
        Assert.True(messages.Single(m => m.Tag("queue") == "wakeups").Value >= 1);
        Assert.Equal(1, messages.Single(m => m.Tag("queue") == "poison").Value);

        // Within the interval the snapshot is reused; once it is older than three intervals the gauges go quiet.
        world.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.Same(snapshot, await sampler.SampleIfDueAsync(CancellationToken.None));
        world.Time.Advance(TimeSpan.FromMinutes(3));
        Assert.Empty(capture.Observe("clouddelivery.queue.records"));
        Assert.NotSame(snapshot, await sampler.SampleIfDueAsync(CancellationToken.None));
        Assert.Equal(2, capture.Observe("clouddelivery.queue.records").Count);
    }

    [Fact]
    public async Task Ready_age_is_zero_when_nothing_is_due_and_a_capped_sample_is_a_lower_bound()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("later.example", 10, "mx.later.example");
        await world.Network.AddMxServerAsync("mx.later.example", o => o.OnRcpt = _ => new SmtpServerReply(451, "4.3.0", "try again later"));
        await world.SubmitAsync("s@sender.example", ["a@later.example", "b@later.example", "c@later.example"]);
        await world.DrainAsync();
        using var metrics = new QueueMetrics();

        var full = await new QueueSampler(world.Storage, metrics, new TelemetryOptions(), world.Time).SampleAsync(CancellationToken.None);
        var capped = await new QueueSampler(world.Storage, metrics, new TelemetryOptions { QueueSampleMaxPages = 2 }, world.Time) { PageSize = 1 }.SampleAsync(CancellationToken.None);

        // Deferred for 7.5 minutes: none is due yet.
        Assert.Equal(3, full.Deferred);
        Assert.Equal(TimeSpan.Zero, full.OldestReadyDeferred);
        Assert.False(full.Capped);
        Assert.Equal(2, capped.Deferred);
        Assert.True(capped.Capped);
    }

    [Fact]
    public async Task Tls_reports_are_counted_per_transport_and_result()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("loud.loopback.test", 10, "mx.loud.loopback.test");
        await world.Network.AddMxServerAsync("mx.loud.loopback.test");
        world.Network.Zone.AddMx("reports.loopback.test", 10, "mx.reports.loopback.test");
        await world.Network.AddMxServerAsync("mx.reports.loopback.test");
        // The https destination has no address: posting fails.
        world.Network.Zone.AddTxt("_smtp._tls.loud.loopback.test", "v=TLSRPTv1; rua=mailto:tls@reports.loopback.test,https://nowhere.loopback.test/tlsrpt");
        await world.SubmitAsync("app@sender.loopback.test", ["a@loud.loopback.test"]);
        await world.DrainAsync();
        using var metrics = new QueueMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        var reporter = new TlsRptReporter { OrganizationName = "Loopback Sender", ContactInfo = "tls@sender.loopback.test", SubmitterDomain = "sender.loopback.test" };
        var sender = TlsRptReportSender.Create(world.TlsResults, world.Queue, world.Engine, reporter, new TlsRptOptions { StartJitter = TimeSpan.Zero }, metrics: metrics);

        await sender.SendDayAsync(DateOnly.FromDateTime(world.Time.GetUtcNow().UtcDateTime), dryRun: false, CancellationToken.None);

        var reports = capture.Of("clouddelivery.tlsrpt.reports");
        Assert.Equal(2, reports.Count);
        Assert.Contains(reports, m => m.Tag("transport") == "mailto" && m.Tag("result") == "sent");
        Assert.Contains(reports, m => m.Tag("transport") == "https" && m.Tag("result") == "failed");
    }

    /// <summary>No entry at information level or above names a full address or quotes the body.</summary>
    internal static void AssertPrivate(LogCapture logs, params string[] secrets)
    {
        foreach (var entry in logs.Entries.Where(e => e.Level >= LogLevel.Information))
        {
            foreach (var secret in secrets)
            {
                Assert.DoesNotContain(secret, entry.Message, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain(entry.Properties.Values, v => v.Contains(secret, StringComparison.OrdinalIgnoreCase));
            }
        }
    }
}
