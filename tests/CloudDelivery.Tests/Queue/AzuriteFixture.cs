using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CloudDelivery.Azure.Storage;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// Azurite (the Azure Storage emulator from npm) for the test run: started once on free loopback ports,
/// in memory. Each test takes its own container, table and queue names, so tests stay independent.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private const string DevAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    private static int nextName;
    private Process? process;

    public string ConnectionString { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        var azurite = FindAzurite() ?? throw new InvalidOperationException("Azurite not found: run `npm ci` in the repository root (it installs the azurite package)");
        var ports = Enumerable.Range(0, 3).Select(_ => FreePort()).ToArray();
        var start = new ProcessStartInfo(azurite, $"--silent --inMemoryPersistence --skipApiVersionCheck --disableProductStyleUrl --blobHost 127.0.0.1 --blobPort {ports[0]} --queueHost 127.0.0.1 --queuePort {ports[1]} --tableHost 127.0.0.1 --tablePort {ports[2]}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        foreach (var port in ports)
        {
            while (!await ListensAsync(port))
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException($"Azurite did not start (exit code {(process.HasExited ? process.ExitCode : -1)})");
                }
                await Task.Delay(100);
            }
        }
        ConnectionString = $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DevAccountKey};" +
            $"BlobEndpoint=http://127.0.0.1:{ports[0]}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{ports[1]}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{ports[2]}/devstoreaccount1;";
    }

    /// <summary>Storage with names no other test uses, created.</summary>
    public async Task<OutboundStorage> NewStorageAsync()
    {
        var n = Interlocked.Increment(ref nextName);
        var suffix = $"{Environment.ProcessId % 10000}x{n}";
        var storage = new OutboundStorage(new OutboundStorageOptions
        {
            ConnectionString = ConnectionString,
            BodiesContainer = $"bodies{suffix}",
            RecipientsTable = $"recipients{suffix}".Replace("x", "X", StringComparison.Ordinal),
            WakeUpQueue = $"wakeups{suffix}",
            PoisonQueue = $"poison{suffix}",
        });
        await storage.EnsureCreatedAsync(CancellationToken.None);
        return storage;
    }

    public Task DisposeAsync()
    {
        if (process is { HasExited: false })
        {
            process.Kill(entireProcessTree: true);
        }
        process?.Dispose();
        return Task.CompletedTask;
    }

    private static string? FindAzurite()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "node_modules", ".bin", "azurite");
            if (File.Exists(candidate))
            {
                return candidate;
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

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
