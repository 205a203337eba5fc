using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Azure.Core.Pipeline;
using Azure.Monitor.OpenTelemetry.Exporter;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Functions;
using CloudDelivery.Loopback.Events;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Telemetry;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;
using CloudDelivery.Tests.Storage;
using Microsoft.ApplicationInsights.WorkerService;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>
/// Application Insights for real: the hosts' registration (Microsoft.ApplicationInsights.WorkerService on the
/// Azure Monitor exporter) sends to an ingestion receiver on 127.0.0.1 over HTTPS with an Entra ID bearer
/// token, as Azure does with local authentication off. The payloads are gzip'd JSON lines of envelopes.
/// Runs alone (no other test in parallel): it records every HTTP request and name lookup the process
/// makes, and all of them must be loopback, so nothing (live metrics, statsbeat, the VM metadata service)
/// dials out.
/// </summary>
[Collection(Name)]
public sealed class ApplicationInsightsExportTests(AzuriteFixture azurite) : IClassFixture<AzuriteFixture>
{
    public const string Name = "ApplicationInsightsEgress";

    [Fact]
    public async Task Serve_delivers_and_exports_metrics_and_recipient_results_to_application_insights_with_a_token()
    {
        using var platform = new PlatformVariable();
        using var egress = new EgressLog();
        await using var ingestion = IngestionReceiver.Start();
        var credential = new UnsignedTokenCredential();
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("insights.example", 10, "mx.insights.example");
        var mx = await world.AddMxServerAsync("mx.insights.example");
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var storage = await azurite.NewStorageAsync();
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["CloudDelivery:Telemetry:Exporter"] = "azuremonitor";
        settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] = ingestion.ConnectionString;
        settings["Logging:LogLevel:Default"] = "Information";
        var app = ServeCommand.Build($"http://127.0.0.1:{port}", settings, services => ingestion.Trust(services, credential));
        const string recipient = "erin@insights.example";
        const string sender = "sam@sender.example";
        var logs = new LogCapture();
        app.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        try
        {
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            using var content = new StringContent($"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: minutes\r\n\r\nMinutes.\r\n", Encoding.UTF8, "message/rfc822");
            var response = await http.PostAsync($"/api/messages?from={sender}&to={recipient}", content);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!logs.Entries.Any(e => e.EventId.Name == "RecipientResult") && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
        finally
        {
            // Stopping flushes every provider: the last metric collection, the log and span batches.
            await app.StopAsync();
            await app.DisposeAsync();
            File.Delete(caFile);
        }

        Assert.NotEmpty(ingestion.Requests);
        Assert.All(ingestion.Requests, r =>
        {
            Assert.Equal("POST", r.Method);
            Assert.Equal("/v2.1/track", r.Path);
            Assert.StartsWith("Bearer ", r.Header("authorization"), StringComparison.Ordinal);
        });
        Assert.Contains("https://monitor.azure.com//.default", credential.RequestedScopes);
        var metrics = ingestion.MetricNames();
        Assert.Contains("clouddelivery.recipients", metrics);
        Assert.Contains("clouddelivery.recipient.latency", metrics);
        Assert.Contains("clouddelivery.delivery.connections", metrics);
        Assert.Contains("clouddelivery.queue.messages", metrics);
        Assert.Contains("clouddelivery.queue.oldest_ready_age", metrics);
        var result = Assert.Single(ingestion.Messages(), m => m.Contains("RecipientResult", StringComparison.Ordinal));
        Assert.Contains("delivered", result, StringComparison.Ordinal);
        Assert.Contains("insights.example", result, StringComparison.Ordinal);
        // Neither envelope address leaves in any item: logs, spans (storage calls, the submission request), metrics.
        var everything = ingestion.AllText();
        Assert.DoesNotContain(recipient, everything, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(sender, everything, StringComparison.OrdinalIgnoreCase);
        egress.AssertLoopbackOnly();
    }

    [Fact]
    public async Task The_functions_registration_has_one_exporter_for_our_meters_and_logs()
    {
        using var platform = new PlatformVariable();
        using var egress = new EgressLog();
        await using var ingestion = IngestionReceiver.Start();
        var credential = new UnsignedTokenCredential();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["CloudDelivery:Hostname"] = "mta.loopback.test",
            ["CloudDelivery:Storage:ConnectionString"] = azurite.ConnectionString,
            ["CloudDelivery:Telemetry:Exporter"] = "azuremonitor",
            ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = ingestion.ConnectionString,
        });
        builder.Services.AddMetrics();
        builder.Services.AddCloudDelivery(builder.Configuration);
        builder.Services.AddFunctionsTelemetry(builder.Configuration);
        ingestion.Trust(builder.Services, credential);
        var host = builder.Build();
        try
        {
            await host.StartAsync();
            // The engine's own instruments (it makes them itself; the meter provider listens by meter name).
            using var metrics = new DeliveryMetrics();
            metrics.Connections.Add(1, new KeyValuePair<string, object?>("result", "ok"));
            var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("CloudDelivery.Delivery");
            CloudDelivery.Azure.Telemetry.RecipientResultLog.RecipientResult(logger, "m1", "functions.example", "mx.functions.example", 1, "delivered", "250", "opportunistic", "none");
        }
        finally
        {
            await host.StopAsync();
            host.Dispose();
        }

        // One exporter on one meter provider and one logger provider: each point and record arrives once.
        Assert.Single(ingestion.MetricNames(), n => n == "clouddelivery.delivery.connections");
        Assert.Single(ingestion.Messages(), m => m.Contains("RecipientResult", StringComparison.Ordinal));
        Assert.Contains("https://monitor.azure.com//.default", credential.RequestedScopes);
        egress.AssertLoopbackOnly();
    }

    /// <summary>
    /// An Application Insights ingestion endpoint on 127.0.0.1 over HTTPS (the exporter sends a bearer token
    /// over TLS only) that keeps every request and accepts every item.
    /// </summary>
    private sealed class IngestionReceiver : IAsyncDisposable
    {
        private readonly TestPki pki = TestPki.Create();
        private readonly LoopbackHttpsReceiver receiver;
        private readonly ConcurrentQueue<ReceivedRequest> requests = new();

        private IngestionReceiver()
        {
            receiver = new LoopbackHttpsReceiver(IPAddress.Loopback, pki.Issue(["localhost"]), request =>
            {
                requests.Enqueue(request);
                var items = Lines(request).Count;
                return Task.FromResult(new ReceiverReply(200, $"{{\"itemsReceived\":{items},\"itemsAccepted\":{items},\"errors\":[]}}"));
            });
            // A fresh key each time: the exporter's offline store is per key, so nothing from an earlier run is resent here.
            ConnectionString = $"InstrumentationKey={Guid.NewGuid()};IngestionEndpoint=https://127.0.0.1:{receiver.EndPoint.Port}/";
        }

        public string ConnectionString { get; }

        public IReadOnlyList<ReceivedRequest> Requests => requests.ToArray();

        public static IngestionReceiver Start() => new();

        /// <summary>The test's credential instead of the managed identity, and a transport that trusts the test CA only.</summary>
        public void Trust(IServiceCollection services, UnsignedTokenCredential credential)
        {
            services.Configure<ApplicationInsightsServiceOptions>(options => options.Credential = credential);
            services.Configure<AzureMonitorExporterOptions>(options => options.Transport = new HttpClientTransport(pki.TrustingHandler()));
        }

        /// <summary>Every envelope received, one JSON text each.</summary>
        public IReadOnlyList<string> Items() => [.. Requests.SelectMany(Lines)];

        public string AllText() => string.Join('\n', Items());

        /// <summary>The names of the metric points received, once per point.</summary>
        public IReadOnlyList<string> MetricNames() => [.. Envelopes("MetricData").SelectMany(data =>
            data.GetProperty("metrics").EnumerateArray().Select(m => m.GetProperty("name").GetString()!))];

        /// <summary>The log records received (message items), each as its whole envelope's text.</summary>
        public IReadOnlyList<string> Messages() => [.. Items().Where(i => BaseType(i) == "MessageData")];

        public async ValueTask DisposeAsync()
        {
            await receiver.DisposeAsync();
            pki.Dispose();
        }

        private IEnumerable<JsonElement> Envelopes(string baseType) => Items()
            .Where(i => BaseType(i) == baseType)
            .Select(i => JsonDocument.Parse(i).RootElement.GetProperty("data").GetProperty("baseData").Clone());

        private static string? BaseType(string item) =>
            JsonDocument.Parse(item).RootElement.TryGetProperty("data", out var data) && data.TryGetProperty("baseType", out var type) ? type.GetString() : null;

        private static List<string> Lines(ReceivedRequest request)
        {
            var body = request.Body;
            if (string.Equals(request.Header("content-encoding"), "gzip", StringComparison.OrdinalIgnoreCase))
            {
                using var gzip = new GZipStream(new MemoryStream(body), CompressionMode.Decompress);
                using var plain = new MemoryStream();
                gzip.CopyTo(plain);
                body = plain.ToArray();
            }
            return [.. Encoding.UTF8.GetString(body).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
        }
    }

    /// <summary>
    /// Microsoft.ApplicationInsights 3.x reports which of its features are in use, and for that asks the VM
    /// metadata service (169.254.169.254) what it runs on unless an Azure app platform's variable says so
    /// already; it has no switch. On Functions the platform sets FUNCTIONS_WORKER_RUNTIME; the tests set it
    /// too (the serve test included, as no other switch exists), for the test's duration only.
    /// </summary>
    private sealed class PlatformVariable : IDisposable
    {
        private const string Name = "FUNCTIONS_WORKER_RUNTIME";
        private readonly string? before = Environment.GetEnvironmentVariable(Name);

        public PlatformVariable() => Environment.SetEnvironmentVariable(Name, "dotnet-isolated");

        public void Dispose() => Environment.SetEnvironmentVariable(Name, before);
    }

    /// <summary>
    /// Every HttpClient request and every name lookup the process starts while it is alive, read from the
    /// runtime's own networking event sources (they see the exporter's, the VM metadata probe's and Azure
    /// Core's requests alike).
    /// </summary>
    private sealed class EgressLog : EventListener
    {
        private readonly ConcurrentQueue<string> hosts = new();

        public void AssertLoopbackOnly()
        {
            var seen = hosts.ToArray();
            Assert.NotEmpty(seen);
            // An empty name is this machine's own (Dns.GetHostEntry("")).
            Assert.All(seen, entry => Assert.True(
                entry.Split(' ')[0] is "" or "localhost" || (IPAddress.TryParse(entry.Split(' ')[0].Trim('[', ']'), out var address) && IPAddress.IsLoopback(address)),
                $"the process reached for {entry}"));
        }

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name is "System.Net.Http" or "System.Net.NameResolution")
            {
                EnableEvents(eventSource, EventLevel.Informational);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            var name = (eventData.EventSource.Name, eventData.EventName) switch
            {
                ("System.Net.Http", "RequestStart") => "host",
                ("System.Net.NameResolution", "ResolutionStart") => "hostNameOrAddress",
                _ => null,
            };
            if (name is not null && eventData.PayloadNames is { } names && names.IndexOf(name) is var index and >= 0 && eventData.Payload?[index] is string host)
            {
                hosts.Enqueue(names.IndexOf("pathAndQuery") is var path and >= 0 ? $"{host} {eventData.Payload[path]}" : host);
            }
        }
    }
}

/// <summary>Tests that watch the whole process's network use, so they run with no other test beside them.</summary>
[CollectionDefinition(ApplicationInsightsExportTests.Name, DisableParallelization = true)]
public sealed class ApplicationInsightsEgressCollection
{
}
