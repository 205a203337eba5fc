using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Loopback.Storage;

/// <summary>
/// Azurite, the Azure Storage emulator from npm (pinned in the repository's package-lock.json), run as a
/// child process on loopback for tests, the demo, the benchmark and <c>serve</c>'s default storage.
/// </summary>
public sealed class AzuriteProcess : IDisposable
{
    /// <summary>Azurite's well-known development account key (public, documented by Microsoft).</summary>
    public const string DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly Process process;

    private AzuriteProcess(Process process, int blobPort, int queuePort, int tablePort, bool https)
    {
        this.process = process;
        BlobPort = blobPort;
        QueuePort = queuePort;
        TablePort = tablePort;
        Scheme = https ? "https" : "http";
    }

    /// <summary>The development account's name, the first path segment of every (path-style) URI.</summary>
    public const string AccountName = "devstoreaccount1";

    /// <summary>"https" when started with <see cref="AzuriteHttps"/>, else "http".</summary>
    public string Scheme { get; }

    /// <summary>Path-style blob service URI of the development account.</summary>
    public string BlobEndpoint => $"{Scheme}://127.0.0.1:{BlobPort}/{AccountName}";

    /// <summary>Path-style queue service URI of the development account.</summary>
    public string QueueEndpoint => $"{Scheme}://127.0.0.1:{QueuePort}/{AccountName}";

    /// <summary>Path-style table service URI of the development account.</summary>
    public string TableEndpoint => $"{Scheme}://127.0.0.1:{TablePort}/{AccountName}";

    public int BlobPort { get; }

    public int QueuePort { get; }

    public int TablePort { get; }

    /// <summary>A connection string for this instance's development account.</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol={Scheme};AccountName={AccountName};AccountKey={DevelopmentAccountKey};" +
        $"BlobEndpoint={BlobEndpoint};QueueEndpoint={QueueEndpoint};TableEndpoint={TableEndpoint};";

    /// <summary>The azurite launcher in node_modules/.bin of the current directory or the program's, or a parent of either.</summary>
    public static string? Find()
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

    /// <summary>
    /// Starts Azurite and waits until its three services listen. With <paramref name="location"/> null the
    /// data lives in memory; with <paramref name="standardPorts"/> it takes 10000–10002 (what
    /// "UseDevelopmentStorage=true" points at), else free ports. With <paramref name="https"/> it serves
    /// HTTPS and accepts OAuth bearer tokens as well as the account key.
    /// </summary>
    /// <exception cref="InvalidOperationException">Azurite is not installed or did not start.</exception>
    public static async Task<AzuriteProcess> StartAsync(string? location = null, bool standardPorts = false, AzuriteHttps? https = null, CancellationToken cancellationToken = default)
    {
        var launcher = Find() ?? throw new InvalidOperationException("Azurite is not installed: run `npm ci` in the repository root");
        int[] ports = standardPorts ? [10000, 10001, 10002] : [FreePort(), FreePort(), FreePort()];
        var storage = location is null ? "--inMemoryPersistence" : $"--location \"{location}\"";
        // Azurite accepts bearer tokens only over HTTPS; "basic" checks a token's issuer, audience and
        // lifetime but not its signature, so tests can mint their own.
        // --disableTelemetry: Azurite otherwise reports usage over the internet, and tests, the demo and the
        // benchmark talk to 127.0.0.0/8 only.
        var tls = https is null ? string.Empty : $"--cert \"{https.CertificatePemPath}\" --key \"{https.KeyPemPath}\" --oauth basic ";
        var process = Process.Start(new ProcessStartInfo(launcher, $"--silent --disableTelemetry {storage} {tls}--skipApiVersionCheck --disableProductStyleUrl --blobHost 127.0.0.1 --blobPort {ports[0]} --queueHost 127.0.0.1 --queuePort {ports[1]} --tableHost 127.0.0.1 --tablePort {ports[2]}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var azurite = new AzuriteProcess(process, ports[0], ports[1], ports[2], https is not null);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        foreach (var port in ports)
        {
            while (!await ListensAsync(port))
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    azurite.Dispose();
                    throw new InvalidOperationException($"Azurite did not start on port {port}");
                }
                await Task.Delay(100, cancellationToken);
            }
        }
        return azurite;
    }

    /// <summary>True when something accepts connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<bool> ListensAsync(int port)
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }
        process.Dispose();
    }
}

/// <summary>Azurite over HTTPS with OAuth: the server certificate and its private key as PEM files.</summary>
public sealed record AzuriteHttps(string CertificatePemPath, string KeyPemPath);
