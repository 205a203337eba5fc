using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>serve</c>'s convenience for a developer machine: with the default development connection string
/// ("UseDevelopmentStorage=true", which points at 127.0.0.1:10000–10002) and nothing listening there, it
/// starts Azurite from the repository's node_modules, with its data in a temporary directory. The tests'
/// own Azurite runner (tests/CloudDelivery.Loopback) is not shipped; this is the one thing of it the tool needs.
/// </summary>
internal static class LocalAzurite
{
    private static readonly int[] DevelopmentPorts = [10000, 10001, 10002];

    public static async Task<IDisposable?> StartIfNeededAsync(string connectionString, TextWriter output, CancellationToken cancellationToken)
    {
        if (!connectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase) || await ListensAsync(DevelopmentPorts[0]))
        {
            return null;
        }
        var launcher = FindLauncher()
            ?? throw new LocalAzuriteUnavailableException(NotFound);
        var location = Path.Combine(Path.GetTempPath(), "clouddelivery-azurite");
        Directory.CreateDirectory(location);
        var azurite = await StartAsync(launcher, location, cancellationToken);
        await output.WriteLineAsync($"started Azurite (data in {location})");
        return azurite;
    }

    /// <summary>What to do when no emulator runs and none can be started: one line, every way out.</summary>
    internal const string NotFound = "storage is UseDevelopmentStorage=true but nothing listens on 127.0.0.1:10000 and Azurite was not found: install it with `npm install -g azurite` (or run `npm ci` in a CloudDelivery checkout and start there), or pass --storage CONNECTION or --account NAME";

    /// <summary>
    /// The azurite launcher in node_modules/.bin of the current directory or the program's, or a parent of
    /// either (a checkout), else on PATH (a global npm install, as an installed tool has no checkout).
    /// </summary>
    private static string? FindLauncher()
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
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, OperatingSystem.IsWindows() ? "azurite.cmd" : "azurite");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    private static async Task<IDisposable> StartAsync(string launcher, string location, CancellationToken cancellationToken)
    {
        // --disableTelemetry: Azurite otherwise reports usage over the internet.
        var process = Process.Start(new ProcessStartInfo(launcher, $"--silent --disableTelemetry --location \"{location}\" --skipApiVersionCheck --disableProductStyleUrl --blobHost 127.0.0.1 --blobPort {DevelopmentPorts[0]} --queueHost 127.0.0.1 --queuePort {DevelopmentPorts[1]} --tableHost 127.0.0.1 --tablePort {DevelopmentPorts[2]}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var running = new ChildProcess(process);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        foreach (var port in DevelopmentPorts)
        {
            while (!await ListensAsync(port))
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    running.Dispose();
                    throw new LocalAzuriteUnavailableException($"Azurite ({launcher}) did not start on port {port}");
                }
                await Task.Delay(100, cancellationToken);
            }
        }
        return running;
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

    /// <summary>Azurite while <c>serve</c> runs: disposing stops it and the node processes it started.</summary>
    private sealed class ChildProcess(Process process) : IDisposable
    {
        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            process.Dispose();
        }
    }
}

/// <summary>No local storage emulator runs and none could be started: the operator's to fix, in one line.</summary>
internal sealed class LocalAzuriteUnavailableException(string message) : Exception(message);
