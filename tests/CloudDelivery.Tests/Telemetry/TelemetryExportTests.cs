using System.Collections.Concurrent;
using System.Net;
using System.Text;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>
/// The export path for real: the <c>serve</c> host with the OTLP exporter (http/protobuf, configured by the
/// standard OTEL_EXPORTER_OTLP_* settings) sends to a receiver on 127.0.0.1 while it delivers through
/// Azurite and a loopback MX. The payloads are protobuf; instrument names, tag values and log properties
/// appear in them as UTF-8 strings, which is all this checks.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class TelemetryExportTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Serve_exports_queue_metrics_logs_and_storage_spans_over_otlp()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("export.example", 10, "mx.export.example");
        var mx = await world.AddMxServerAsync("mx.export.example");
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var storage = await azurite.NewStorageAsync();
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["CloudDelivery:Telemetry:Exporter"] = "otlp";
        settings["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint;
        settings["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
        settings["Logging:LogLevel:Default"] = "Information";
        var app = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        var logs = new LogCapture();
        app.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        const string body = "Minutes of the board meeting.";
        try
        {
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            using var content = new StringContent($"From: <s@sender.example>\r\nTo: <erin@export.example>\r\nSubject: minutes\r\n\r\n{body}\r\n", Encoding.UTF8, "message/rfc822");
            var response = await http.PostAsync("/api/messages?from=s@sender.example&to=erin@export.example", content);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));
            // The outcome is recorded (and reported) right after the 250; give the handler that moment.
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

        var metrics = receiver.Text("metrics");
        Assert.Contains("clouddelivery.recipients", metrics, StringComparison.Ordinal);
        Assert.Contains("opportunistic", metrics, StringComparison.Ordinal);
        Assert.Contains("delivered", metrics, StringComparison.Ordinal);
        Assert.Contains("clouddelivery.recipient.latency", metrics, StringComparison.Ordinal);
        Assert.Contains("clouddelivery.queue.records", metrics, StringComparison.Ordinal);
        Assert.Contains("clouddelivery.queue.messages", metrics, StringComparison.Ordinal);
        Assert.Contains("poison", metrics, StringComparison.Ordinal);
        Assert.Contains("clouddelivery.delivery.connections", metrics, StringComparison.Ordinal);
        var exportedLogs = receiver.Text("logs");
        Assert.Contains("RecipientResult", exportedLogs, StringComparison.Ordinal);
        Assert.Contains("TlsPosture", exportedLogs, StringComparison.Ordinal);
        Assert.DoesNotContain("erin@export.example", exportedLogs, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(body, exportedLogs, StringComparison.Ordinal);
        Assert.Contains("QueueClient", receiver.Text("traces"), StringComparison.Ordinal);
        // Every sink of the host, not only the exported one, stays free of the address at information level.
        QueueTelemetryTests.AssertPrivate(logs, "erin@export.example", body);
        Assert.Contains(logs.Entries, e => e.EventId.Name == "RecipientResult" && e.Properties["Result"] == "delivered" && e.Properties["TlsPosture"] == "opportunistic");
    }

    /// <summary>An OTLP/HTTP receiver on 127.0.0.1 that keeps the bodies POSTed to /v1/{signal}.</summary>
    private sealed class OtlpReceiver : IAsyncDisposable
    {
        private readonly WebApplication app;
        private readonly ConcurrentDictionary<string, ConcurrentQueue<byte[]>> bodies = new(StringComparer.Ordinal);

        private OtlpReceiver(WebApplication app, string endpoint)
        {
            this.app = app;
            Endpoint = endpoint;
        }

        public string Endpoint { get; }

        public static async Task<OtlpReceiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            OtlpReceiver? receiver = null;
            app.MapPost("/v1/{signal}", async (string signal, HttpRequest request) =>
            {
                using var buffer = new MemoryStream();
                await request.Body.CopyToAsync(buffer);
                receiver!.bodies.GetOrAdd(signal, _ => new ConcurrentQueue<byte[]>()).Enqueue(buffer.ToArray());
                // An empty ExportXServiceResponse message: zero bytes of protobuf.
                return Results.Bytes([], "application/x-protobuf");
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            receiver = new OtlpReceiver(app, address);
            return receiver;
        }

        /// <summary>Everything received for <paramref name="signal"/> (metrics, logs, traces), as UTF-8 text.</summary>
        public string Text(string signal) =>
            bodies.TryGetValue(signal, out var received) ? string.Concat(received.Select(b => Encoding.UTF8.GetString(b))) : string.Empty;

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
