using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Loopback.Dns;

/// <summary>
/// Debian's DNS programs that the DNSSEC tests run for real: ldns-keygen and ldns-signzone (package
/// ldnsutils) sign test zones, nsd serves them, unbound validates them. Missing programs are an error that
/// names the package, never a reason to skip: without them DANE would be tested only against a resolver
/// stand-in that sets the AD bit by decree.
/// </summary>
public static class DnsPrograms
{
    /// <summary>The Debian packages that hold every program here (what .ci/run installs).</summary>
    public const string Packages = "unbound ldnsutils nsd";

    // Debian puts daemons in sbin, which a non-root PATH often lacks.
    private static readonly string[] SystemDirectories = ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"];

    /// <summary>The validating resolver.</summary>
    public static string Unbound => Find("unbound", "unbound");

    /// <summary>Creates DNSSEC keys.</summary>
    public static string LdnsKeygen => Find("ldns-keygen", "ldnsutils");

    /// <summary>Signs a zone file with keys from <see cref="LdnsKeygen"/>.</summary>
    public static string LdnsSignzone => Find("ldns-signzone", "ldnsutils");

    /// <summary>The authoritative server that serves a signed zone file as it is.</summary>
    public static string Nsd => Find("nsd", "nsd");

    /// <summary>The full path of <paramref name="program"/>, from PATH or the system directories.</summary>
    /// <exception cref="InvalidOperationException">The program is not installed; the message names its Debian package.</exception>
    public static string Find(string program, string package)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var directory in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(SystemDirectories))
        {
            var candidate = Path.Combine(directory, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new InvalidOperationException(
            $"`{program}` is not installed: install the Debian package {package} " +
            $"(`apt-get install --no-install-recommends {Packages}`, as .ci/run does).");
    }

    /// <summary>Runs a short command to its end and returns its standard output.</summary>
    /// <exception cref="InvalidOperationException">It failed or outlived <paramref name="timeout"/>; the message holds its output.</exception>
    public static async Task<string> RunAsync(string program, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout)
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
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{Path.GetFileName(program)} {string.Join(' ', start.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s");
        }
        var stdout = await output;
        var stderr = await error;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(program)} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}:\n{stderr}{stdout}");
        }
        return stdout;
    }

    /// <summary>
    /// A port free for both UDP and TCP on <paramref name="address"/> right now (a DNS server needs both,
    /// RFC 7766 §5), found by holding both sockets at once.
    /// </summary>
    public static int FreeDnsPort(IPAddress address)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var udp = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(address, 0));
            var port = ((IPEndPoint)udp.LocalEndPoint!).Port;
            using var tcp = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                tcp.Bind(new IPEndPoint(address, port));
                return port;
            }
            catch (SocketException)
            {
                // Taken for TCP: try another.
            }
        }
        throw new InvalidOperationException($"no port free for both UDP and TCP on {address}");
    }
}
