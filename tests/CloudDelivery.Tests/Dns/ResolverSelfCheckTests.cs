using System.Net;
using System.Text.Json;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Dns;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Telemetry;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;
using CloudDelivery.Tests.Telemetry;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace CloudDelivery.Tests.Dns;

/// <summary>
/// The resolver self-check against the loopback DNS server: it tells a validating resolver (AD on the
/// signed name, SERVFAIL for the broken one) from one that does not validate and from one that does not
/// answer, counts each check, logs it, and health reports it.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ResolverSelfCheckTests(AzuriteFixture azurite)
{
    private const string Signed = "signed.selfcheck.test";
    private const string Broken = "broken.selfcheck.test";

    private static readonly ResolverCheckOptions Names = new() { SignedName = Signed, BrokenName = Broken, Interval = TimeSpan.FromMinutes(15) };

    /// <summary>A zone as a validating resolver would answer: the signed name with AD, the broken one SERVFAIL (DNSSEC Bogus).</summary>
    private static DnsZone ValidatingZone() => new DnsZone()
        .AddMx(Signed, 10, "mx." + Signed).MarkSecure(Signed)
        .AddMx(Broken, 10, "mx." + Broken).MarkBogus(Broken);

    [Fact]
    public async Task A_validating_resolver_is_validating_and_the_check_is_counted_with_result_and_resolver()
    {
        await using var dns = await LoopbackDnsServer.StartAsync(ValidatingZone());
        using var metrics = new DeliveryMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);

        var result = await Check(dns.EndPoint, metrics);

        Assert.Equal(ResolverValidation.Validating, result.State);
        Assert.Equal(dns.EndPoint.ToString(), result.Resolver);
        Assert.Equal($"resolver {dns.EndPoint}: validating ({Signed} authentic, {Broken} SERVFAIL with extended error 6 (DNSSEC Bogus))", result.ToString());
        var counted = Assert.Single(capture.Of("clouddelivery.resolver.checks"));
        Assert.Equal(1, counted.Value);
        Assert.Equal("validating", counted.Tag("result"));
        Assert.Equal(dns.EndPoint.ToString(), counted.Tag("resolver"));
    }

    [Fact]
    public async Task A_resolver_that_answers_the_signed_name_without_ad_is_not_validating()
    {
        // As Azure's default resolver: the records come, the AD bit never does.
        await using var dns = await LoopbackDnsServer.StartAsync(new DnsZone().AddMx(Signed, 10, "mx." + Signed).MarkBogus(Broken));
        using var metrics = new DeliveryMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);

        var result = await Check(dns.EndPoint, metrics);

        Assert.Equal(ResolverValidation.NotValidating, result.State);
        Assert.Contains($"{Signed} answered without AD", result.Detail, StringComparison.Ordinal);
        Assert.Equal("not-validating", Assert.Single(capture.Of("clouddelivery.resolver.checks")).Tag("result"));
    }

    [Fact]
    public async Task A_resolver_that_resolves_the_broken_name_is_not_validating_even_with_ad_on_the_signed_name()
    {
        // A forwarder passing on an upstream's AD bit without validating itself: the bogus name resolves.
        await using var dns = await LoopbackDnsServer.StartAsync(new DnsZone()
            .AddMx(Signed, 10, "mx." + Signed).MarkSecure(Signed)
            .AddMx(Broken, 10, "mx." + Broken));

        var result = await Check(dns.EndPoint);

        Assert.Equal(ResolverValidation.NotValidating, result.State);
        Assert.Contains($"{Broken} resolved", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nothing_listening_is_unreachable_within_the_lookup_timeout()
    {
        var closed = new IPEndPoint(IPAddress.Loopback, LoopbackWorld.FreePort());
        using var metrics = new DeliveryMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        var resolver = new DnsResolver(new DnsResolverOptions { Server = closed, QueryTimeout = TimeSpan.FromMilliseconds(300), Retries = 0, LookupTimeout = TimeSpan.FromSeconds(1) });

        // The bound here only keeps a defect from hanging the suite; the check's own bound is the lookup timeout.
        var result = await new ResolverSelfCheck(resolver, Names, metrics: metrics).CheckAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(ResolverValidation.Unreachable, result.State);
        Assert.StartsWith($"{Signed}: MX lookup", result.Detail, StringComparison.Ordinal);
        var counted = Assert.Single(capture.Of("clouddelivery.resolver.checks"));
        Assert.Equal("unreachable", counted.Tag("result"));
        Assert.Equal(closed.ToString(), counted.Tag("resolver"));
    }

    [Fact]
    public async Task A_signed_name_that_gets_servfail_is_unreachable_not_validating()
    {
        // A validating resolver cut off from the internet fails everything: nothing to judge validation by.
        await using var dns = await LoopbackDnsServer.StartAsync(ValidatingZone().MarkServFail(Signed));

        var result = await Check(dns.EndPoint);

        Assert.Equal(ResolverValidation.Unreachable, result.State);
    }

    [Fact]
    public async Task The_loop_checks_at_start_up_and_again_after_the_interval_logging_each_check()
    {
        await using var dns = await LoopbackDnsServer.StartAsync(ValidatingZone());
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var health = new ServiceHealth(time);
        var logs = new LogCapture();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(logs));
        using var metrics = new DeliveryMetrics();
        using var capture = new MeasurementCapture(metrics.Meter);
        var check = new ResolverSelfCheck(Resolver(dns.EndPoint), Names, time, metrics);
        var loop = new ResolverSelfCheckLoop(check, health, time, loggers.CreateLogger<ResolverSelfCheckLoop>());
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var died = false;

        var running = loop.RunAsync(() => died = true, stop.Token);
        await WaitForChecksAsync(capture, 1, stop.Token);
        var first = health.Resolver.Current;
        while (health.Loop(ResolverSelfCheckLoop.LoopName).LastSuccess is null)
        {
            await Task.Delay(20, stop.Token);
        }
        // The clock moves in steps until the next round comes; when it comes tells how long the loop waited.
        time.Advance(Names.Interval - TimeSpan.FromSeconds(5));
        while (capture.Of("clouddelivery.resolver.checks").Count < 2)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(20, stop.Token);
        }
        var second = health.Resolver.Current;
        await stop.CancelAsync();
        await running;

        Assert.Equal(ResolverValidation.Validating, first.State);
        Assert.Equal(dns.EndPoint.ToString(), first.Resolver);
        Assert.True(second.CheckedAt - first.CheckedAt >= Names.Interval, $"second check {second.CheckedAt - first.CheckedAt} after the first");
        Assert.False(died);
        var events = logs.Entries.Where(e => e.EventId.Name == "ResolverSelfCheck").ToList();
        Assert.True(events.Count >= 2, $"{events.Count} ResolverSelfCheck events");
        var logged = events[0];
        Assert.Equal(LogLevel.Information, logged.Level);
        Assert.Equal(dns.EndPoint.ToString(), logged.Properties["Resolver"]);
        Assert.Equal("validating", logged.Properties["Result"]);
        Assert.Equal($"{Signed} authentic, {Broken} SERVFAIL with extended error 6 (DNSSEC Bogus)", logged.Properties["Detail"]);
    }

    [Fact]
    public async Task A_resolver_that_does_not_validate_is_logged_as_a_warning_and_makes_health_degraded_not_unhealthy()
    {
        await using var dns = await LoopbackDnsServer.StartAsync(new DnsZone().AddMx(Signed, 10, "mx." + Signed));
        var storage = await azurite.NewStorageAsync();
        var health = new ServiceHealth(TimeProvider.System);
        var logs = new LogCapture();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(logs));
        var loop = new ResolverSelfCheckLoop(new ResolverSelfCheck(Resolver(dns.EndPoint), Names), health, TimeProvider.System, loggers.CreateLogger<ResolverSelfCheckLoop>());
        var beforeAnyCheck = await new ServiceHealthCheck(health, storage).CheckHealthAsync(new HealthCheckContext());

        await loop.CheckOnceAsync(CancellationToken.None);
        var report = await new ServiceHealthCheck(health, storage).CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Healthy, beforeAnyCheck.Status);
        Assert.Equal("unchecked", ResolverData(beforeAnyCheck).GetProperty("state").GetString());
        Assert.Equal(HealthStatus.Degraded, report.Status);
        Assert.Contains("not-validating", report.Description, StringComparison.Ordinal);
        var data = ResolverData(report);
        Assert.Equal("not-validating", data.GetProperty("state").GetString());
        Assert.Equal(dns.EndPoint.ToString(), data.GetProperty("resolver").GetString());
        Assert.Equal(JsonValueKind.String, data.GetProperty("checkedAt").ValueKind);
        Assert.Contains("without AD", data.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var logged = Assert.Single(logs.Entries, e => e.EventId.Name == "ResolverSelfCheck");
        Assert.Equal(LogLevel.Warning, logged.Level);
        Assert.Equal("not-validating", logged.Properties["Result"]);

        // As both hosts print it: checks → clouddelivery → data → resolver.
        static JsonElement ResolverData(HealthCheckResult result)
        {
            var report = new HealthReport(new Dictionary<string, HealthReportEntry> { ["clouddelivery"] = new(result.Status, result.Description, TimeSpan.Zero, null, result.Data) }, TimeSpan.Zero);
            return JsonDocument.Parse(ServiceHealthCheck.ToJson(report)).RootElement.GetProperty("checks").GetProperty("clouddelivery").GetProperty("data").GetProperty("resolver").Clone();
        }
    }

    [Fact]
    public async Task A_disabled_check_asks_nothing_and_health_says_disabled_without_degrading()
    {
        await using var dns = await LoopbackDnsServer.StartAsync(ValidatingZone());
        var storage = await azurite.NewStorageAsync();
        var health = new ServiceHealth(TimeProvider.System);
        var options = new ResolverCheckOptions { SignedName = Signed, BrokenName = Broken, Enabled = false };
        var loop = new ResolverSelfCheckLoop(new ResolverSelfCheck(Resolver(dns.EndPoint), options), health, TimeProvider.System);

        await loop.RunAsync(() => Assert.Fail("a disabled check is no dead loop"), CancellationToken.None);
        var report = await new ServiceHealthCheck(health, storage).CheckHealthAsync(new HealthCheckContext());

        Assert.Empty(dns.Queries);
        Assert.Equal(ResolverValidation.Disabled, health.Resolver.Current.State);
        Assert.Equal(HealthStatus.Healthy, report.Status);
        Assert.DoesNotContain(health.Loops, l => l.Name == ResolverSelfCheckLoop.LoopName);
    }

    [Fact]
    public async Task Serve_checks_the_configured_resolver_with_the_configured_names_and_healthz_says_degraded()
    {
        await using var world = await LoopbackWorld.StartAsync();
        // Answers without AD, as Azure's default resolver gives them.
        world.Zone.AddMx(Signed, 10, "mx." + Signed).AddMx(Broken, 10, "mx." + Broken);
        var storage = await azurite.NewStorageAsync();
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["Logging:LogLevel:Default"] = "None";
        settings["CloudDelivery:Delivery:ResolverCheck:Enabled"] = "true";
        settings["CloudDelivery:Delivery:ResolverCheck:SignedName"] = Signed;
        settings["CloudDelivery:Delivery:ResolverCheck:BrokenName"] = Broken;
        var port = LoopbackWorld.FreePort();
        await using var app = CloudDelivery.Cli.Commands.ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            HttpResponseMessage response;
            JsonElement body;
            var until = DateTime.UtcNow.AddSeconds(30);
            do
            {
                response = await http.GetAsync("/healthz");
                body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
                if (body.GetProperty("checks").GetProperty("clouddelivery").GetProperty("data").GetProperty("resolver").GetProperty("state").GetString() != "unchecked")
                {
                    break;
                }
                await Task.Delay(50);
            }
            while (DateTime.UtcNow < until);

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("degraded", body.GetProperty("status").GetString());
            var resolver = body.GetProperty("checks").GetProperty("clouddelivery").GetProperty("data").GetProperty("resolver");
            Assert.Equal("not-validating", resolver.GetProperty("state").GetString());
            Assert.Equal(world.Dns.EndPoint.ToString(), resolver.GetProperty("resolver").GetString());
            Assert.Contains(world.Dns.Queries, q => q.Name.TrimEnd('.') == Signed);
        }
        finally
        {
            await app.StopAsync();
            File.Delete(caFile);
        }
    }

    private static DnsResolver Resolver(IPEndPoint server) => new(new DnsResolverOptions { Server = server, QueryTimeout = TimeSpan.FromSeconds(2), Retries = 0 });

    private static Task<ResolverCheckResult> Check(IPEndPoint server, DeliveryMetrics? metrics = null) =>
        new ResolverSelfCheck(Resolver(server), Names, metrics: metrics).CheckAsync(CancellationToken.None);

    private static async Task WaitForChecksAsync(MeasurementCapture capture, int count, CancellationToken cancellationToken)
    {
        while (capture.Of("clouddelivery.resolver.checks").Count < count)
        {
            await Task.Delay(20, cancellationToken);
        }
    }
}
