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

    private AzuriteProcess(Process process, int blobPort, int queuePort, int tablePort)
    {
        this.process = process;
        BlobPort = blobPort;
        QueuePort = queuePort;
        TablePort = tablePort;
    }

    public int BlobPort { get; }

    public int QueuePort { get; }

    public int TablePort { get; }

    /// <summary>A connection string for this instance's development account.</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DevelopmentAccountKey};" +
        $"BlobEndpoint=http://127.0.0.1:{BlobPort}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{QueuePort}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{TablePort}/devstoreaccount1;";

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
    /// "UseDevelopmentStorage=true" points at), else free ports.
    /// </summary>
    /// <exception cref="InvalidOperationException">Azurite is not installed or did not start.</exception>
    public static async Task<AzuriteProcess> StartAsync(string? location = null, bool standardPorts = false, CancellationToken cancellationToken = default)
    {
        var launcher = Find() ?? throw new InvalidOperationException("Azurite is not installed: run `npm ci` in the repository root");
        int[] ports = standardPorts ? [10000, 10001, 10002] : [FreePort(), FreePort(), FreePort()];
        var storage = location is null ? "--inMemoryPersistence" : $"--location \"{location}\"";
        var process = Process.Start(new ProcessStartInfo(launcher, $"--silent {storage} --skipApiVersionCheck --disableProductStyleUrl --blobHost 127.0.0.1 --blobPort {ports[0]} --queueHost 127.0.0.1 --queuePort {ports[1]} --tableHost 127.0.0.1 --tablePort {ports[2]}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var azurite = new AzuriteProcess(process, ports[0], ports[1], ports[2]);
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
