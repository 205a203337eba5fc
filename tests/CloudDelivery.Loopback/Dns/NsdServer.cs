using System.Net;

namespace CloudDelivery.Loopback.Dns;

/// <summary>
/// NSD, an authoritative-only DNS server, serving signed zones on 127.0.0.1 at a free port, as the
/// authorities of the internet would: it sends records and signatures as the zone file has them and never
/// checks them, so a spoiled zone reaches the resolver spoiled.
/// </summary>
public sealed class NsdServer : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly DaemonProcess process;

    private NsdServer(DaemonProcess process, IPEndPoint endPoint)
    {
        this.process = process;
        EndPoint = endPoint;
    }

    /// <summary>Where it answers, UDP and TCP.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>What nsd logged so far.</summary>
    public string Log => process.Log;

    /// <summary>Starts nsd for <paramref name="zones"/>, its state in <paramref name="directory"/>, and waits until it answers for each.</summary>
    public static async Task<NsdServer> StartAsync(IReadOnlyList<SignedZone> zones, string directory)
    {
        var nsd = DnsPrograms.Nsd;
        var endPoint = new IPEndPoint(IPAddress.Loopback, DnsPrograms.FreeDnsPort(IPAddress.Loopback));
        var configuration = Path.Combine(directory, "nsd.conf");
        // Run as the current user, unchrooted, with every state file in the test directory; no database, no
        // remote control, one server process: nothing outside the directory is touched.
        var text = $"""
            server:
                ip-address: {endPoint.Address}@{endPoint.Port}
                username: ""
                chroot: ""
                zonesdir: "{directory}"
                pidfile: "{Path.Combine(directory, "nsd.pid")}"
                database: ""
                zonelistfile: "{Path.Combine(directory, "nsd.zonelist")}"
                xfrdfile: "{Path.Combine(directory, "nsd.xfrd")}"
                server-count: 1
                verbosity: 1
            remote-control:
                control-enable: no

            """ + string.Concat(zones.Select(z => $"""
            zone:
                name: "{z.Origin}"
                zonefile: "{z.FilePath}"

            """));
        await File.WriteAllTextAsync(configuration, text);
        var process = DaemonProcess.Start(nsd, ["-d", "-c", configuration], directory);
        var server = new NsdServer(process, endPoint);
        try
        {
            foreach (var zone in zones)
            {
                await process.WaitUntilAsync(
                    async token => await DnsProbe.AskAsync(endPoint, zone.Origin, DnsProbe.Soa, TimeSpan.FromMilliseconds(500), token) is { ResponseCode: 0, Authoritative: true },
                    StartTimeout,
                    $"nsd answering for {zone.Origin} on {endPoint}");
            }
        }
        catch
        {
            server.Dispose();
            throw;
        }
        return server;
    }

    public void Dispose() => process.Dispose();
}
