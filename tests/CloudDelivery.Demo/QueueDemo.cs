using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using CloudDelivery.Cli;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Loopback.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Demo;

/// <summary>
/// The second half of the demo: Azurite (in memory), the <c>serve</c> host on loopback, an HTTP
/// submission, the delivery to the loopback MX and the status the sender would read.
/// </summary>
internal static class QueueDemo
{
    public static async Task<int> RunAsync(TextWriter output, IPEndPoint resolver, LoopbackSmtpServer mx, int mtaStsPort, string caFile, byte[] message, CancellationToken cancellationToken)
    {
        if (AzuriteProcess.Find() is null)
        {
            await output.WriteLineAsync("queue demo skipped: Azurite is not installed (run `npm ci` in the repository root)");
            return 0;
        }
        using var azurite = await AzuriteProcess.StartAsync(cancellationToken: cancellationToken);
        {
            var url = $"http://127.0.0.1:{FreePort()}";
            await using var app = ServeCommand.Build(url, new Dictionary<string, string?>
            {
                ["CloudDelivery:Hostname"] = "demo-sender.loopback.test",
                ["CloudDelivery:Storage:ConnectionString"] = azurite.ConnectionString,
                ["CloudDelivery:Delivery:Resolver"] = resolver.ToString(),
                // The demo's resolver is the loopback DNS server, which knows only the demo's zones: the
                // self-check's public names (ietf.org, dnssec-failed.org) mean nothing to it.
                ["CloudDelivery:Delivery:ResolverCheck:Enabled"] = "false",
                ["CloudDelivery:Delivery:SmtpPort"] = mx.EndPoint.Port.ToString(CultureInfo.InvariantCulture),
                ["CloudDelivery:Delivery:MtaStsHttpsPort"] = mtaStsPort.ToString(CultureInfo.InvariantCulture),
                ["CloudDelivery:Delivery:AllowPrivateAddresses"] = "true",
                ["CloudDelivery:Delivery:TrustCaFile"] = caFile,
                ["Logging:LogLevel:Default"] = "Warning",
                // The demo's output is for people: no telemetry, even where the environment configures an exporter.
                ["CloudDelivery:Telemetry:Exporter"] = "none",
            });
            await app.Services.GetRequiredService<CloudDelivery.Azure.Storage.OutboundStorage>().EnsureCreatedAsync(cancellationToken);
            await app.StartAsync(cancellationToken);
            await output.WriteLineAsync($"queue demo: Azurite on 127.0.0.1:{azurite.BlobPort}/{azurite.QueuePort}/{azurite.TablePort}, `serve` host at {url}");

            using var http = new HttpClient { BaseAddress = new Uri(url) };
            using var content = new ByteArrayContent(message);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("message/rfc822");
            var before = mx.MessagesAccepted;
            await output.WriteLineAsync("POST /api/messages?from=demo@sender.example&to=dave@demo.example&requiretls=true");
            var response = await http.PostAsync("/api/messages?from=demo@sender.example&to=dave@demo.example&requiretls=true", content, cancellationToken);
            var accepted = await response.Content.ReadAsStringAsync(cancellationToken);
            await output.WriteLineAsync($"{(int)response.StatusCode} {accepted}");
            using var json = JsonDocument.Parse(accepted);
            var id = json.RootElement.GetProperty("recipients")[0].GetProperty("id").GetString()!;
            await mx.WaitForMessagesAsync((int)before + 1, TimeSpan.FromSeconds(30));
            string status;
            var deadline = DateTime.UtcNow.AddSeconds(10);
            do
            {
                status = await http.GetStringAsync($"/api/messages/{id}", cancellationToken);
            }
            while (!status.Contains("\"delivered\"", StringComparison.Ordinal) && DateTime.UtcNow < deadline);
            await output.WriteLineAsync($"GET /api/messages/{id}");
            await output.WriteLineAsync(status);
            await app.StopAsync(cancellationToken);
            return status.Contains("\"state\": \"delivered\"", StringComparison.Ordinal) ? 0 : CliApplication.ExitTemporaryFailure;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
