using System.Diagnostics;
using System.Text;

namespace CloudDelivery.Loopback.Dns;

/// <summary>
/// A server program run in the foreground for a test (nsd -d, unbound -d): its standard output and error
/// are kept (the last 64 KiB) so a failing test can show what the server said, and disposing ends it with
/// its whole process tree (nsd forks its server and transfer processes).
/// </summary>
public sealed class DaemonProcess : IDisposable
{
    private const int MaxLogChars = 64 * 1024;
    private readonly Process process;
    private readonly StringBuilder log = new();

    private DaemonProcess(Process process) => this.process = process;

    /// <summary>Starts <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="workingDirectory"/>.</summary>
    public static DaemonProcess Start(string program, IEnumerable<string> arguments, string workingDirectory)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        process.StandardInput.Close();
        var daemon = new DaemonProcess(process);
        process.OutputDataReceived += (_, e) => daemon.Append(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    /// <summary>True once the program has ended (on its own: a bad configuration, a port in use).</summary>
    public bool HasExited => process.HasExited;

    /// <summary>What the program wrote to standard output and error so far (the last 64 KiB).</summary>
    public string Log
    {
        get
        {
            lock (log)
            {
                return log.ToString();
            }
        }
    }

    /// <summary>
    /// Waits until <paramref name="ready"/> says yes, at most <paramref name="timeout"/>, asking every 100 ms.
    /// </summary>
    /// <exception cref="InvalidOperationException">The program ended or the time ran out; the message holds its log.</exception>
    public async Task WaitUntilAsync(Func<CancellationToken, Task<bool>> ready, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{what}: the process exited with {process.ExitCode}. Its output:\n{Log}");
            }
            try
            {
                if (await ready(deadline.Token))
                {
                    return;
                }
                await Task.Delay(100, deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new InvalidOperationException($"{what}: not within {timeout.TotalSeconds:0} s. Its output:\n{Log}");
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (log)
        {
            log.AppendLine(line);
            if (log.Length > MaxLogChars)
            {
                log.Remove(0, log.Length - MaxLogChars);
            }
        }
    }

    public void Dispose()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // Ended between the check and the kill.
        }
        process.Dispose();
    }
}
