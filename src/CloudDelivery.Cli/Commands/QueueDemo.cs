using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using CloudDelivery.Loopback.Smtp;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// The second half of the demo: Azurite (in memory), the <c>serve</c> host on loopback, an HTTP
/// submission, the delivery to the loopback MX and the status the sender would read.
/// </summary>
internal static class QueueDemo
{
    private const string DevAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    public static async Task<int> RunAsync(TextWriter output, IPEndPoint resolver, LoopbackSmtpServer mx, int mtaStsPort, string caFile, byte[] message, CancellationToken cancellationToken)
    {
        var azurite = FindAzurite();
        if (azurite is null)
        {
            await output.WriteLineAsync("queue demo skipped: Azurite is not installed (run `npm ci` in the repository root)");
            return 0;
        }
        var ports = Enumerable.Range(0, 4).Select(_ => FreePort()).ToArray();
        using var emulator = Process.Start(new ProcessStartInfo(azurite, $"--silent --inMemoryPersistence --skipApiVersionCheck --blobHost 127.0.0.1 --blobPort {ports[0]} --queueHost 127.0.0.1 --queuePort {ports[1]} --tableHost 127.0.0.1 --tablePort {ports[2]}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        try
        {
            foreach (var port in ports[..3])
            {
                for (var i = 0; i < 300 && !await ListensAsync(port); i++)
                {
                    await Task.Delay(100, cancellationToken);
                }
            }
            var url = $"http://127.0.0.1:{ports[3]}";
            await using var app = ServeCommand.Build(url, new Dictionary<string, string?>
            {
                ["CloudDelivery:Hostname"] = "demo-sender.loopback.test",
                ["CloudDelivery:Storage:ConnectionString"] = $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DevAccountKey};BlobEndpoint=http://127.0.0.1:{ports[0]}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{ports[1]}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{ports[2]}/devstoreaccount1;",
                ["CloudDelivery:Delivery:Resolver"] = resolver.ToString(),
                ["CloudDelivery:Delivery:SmtpPort"] = mx.EndPoint.Port.ToString(CultureInfo.InvariantCulture),
                ["CloudDelivery:Delivery:MtaStsHttpsPort"] = mtaStsPort.ToString(CultureInfo.InvariantCulture),
                ["CloudDelivery:Delivery:AllowPrivateAddresses"] = "true",
                ["CloudDelivery:Delivery:TrustCaFile"] = caFile,
                ["Logging:LogLevel:Default"] = "Warning",
            });
            await app.Services.GetRequiredService<Azure.Storage.OutboundStorage>().EnsureCreatedAsync(cancellationToken);
            await app.StartAsync(cancellationToken);
            await output.WriteLineAsync($"queue demo: Azurite on 127.0.0.1:{ports[0]}-{ports[2]}, `serve` host at {url}");

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
        finally
        {
            emulator.Kill(entireProcessTree: true);
        }
    }

    private static string? FindAzurite()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                var candidate = Path.Combine(directory.FullName, "node_modules", ".bin", "azurite");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }
        return null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<bool> ListensAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
