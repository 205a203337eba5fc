using System.Net;

namespace CloudDelivery.Loopback.Dns;

/// <summary>
/// Debian's unbound as the validating resolver, run with a repository policy file (infra-bicep/resolver/
/// unbound.conf) and a site file written here: loopback interface and access, the test zones' trust
/// anchors, and stub zones that send their questions to a local authority. The site file ends by including
/// the policy file itself, so the tests check the very settings the Azure resolver runs with.
/// </summary>
public sealed class UnboundResolver : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly DaemonProcess process;

    private UnboundResolver(DaemonProcess process, IPEndPoint endPoint, string siteFile)
    {
        this.process = process;
        EndPoint = endPoint;
        SiteFile = siteFile;
    }

    /// <summary>Where it answers, UDP and TCP.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The path of the site file it runs with.</summary>
    public string SiteFile { get; }

    /// <summary>What unbound logged so far (verbosity 1 logs each validation failure).</summary>
    public string Log => process.Log;

    /// <summary>
    /// Starts unbound for <paramref name="zones"/> served by <paramref name="authority"/>, with
    /// <paramref name="policyFile"/> included, and waits until it answers each zone's SOA as authentic.
    /// </summary>
    public static async Task<UnboundResolver> StartAsync(string policyFile, IReadOnlyList<SignedZone> zones, IPEndPoint authority, string directory)
    {
        var unbound = DnsPrograms.Unbound;
        if (!File.Exists(policyFile))
        {
            throw new FileNotFoundException("unbound policy file not found", policyFile);
        }
        var endPoint = new IPEndPoint(IPAddress.Loopback, DnsPrograms.FreeDnsPort(IPAddress.Loopback));
        var siteFile = Path.Combine(directory, "unbound-site.conf");
        await File.WriteAllTextAsync(siteFile, SiteFileText(Path.GetFullPath(policyFile), zones, authority, endPoint, directory));
        var process = DaemonProcess.Start(unbound, ["-d", "-c", siteFile], directory);
        var resolver = new UnboundResolver(process, endPoint, siteFile);
        try
        {
            foreach (var zone in zones)
            {
                // AD on the apex SOA: the authority answers and the trust anchor validates its DNSKEY set.
                await process.WaitUntilAsync(
                    async token => await DnsProbe.AskAsync(endPoint, zone.Origin, DnsProbe.Soa, TimeSpan.FromMilliseconds(500), token) is { ResponseCode: 0, AuthenticData: true },
                    StartTimeout,
                    $"unbound answering {zone.Origin} SOA as authentic on {endPoint}");
            }
        }
        catch
        {
            resolver.Dispose();
            throw;
        }
        return resolver;
    }

    /// <summary>
    /// The site file: what the policy file leaves to the site. Besides the loopback interface and access
    /// control, the tests refuse every name outside the test zones so no question ever leaves the machine
    /// (unbound would otherwise ask the root servers).
    /// </summary>
    public static string SiteFileText(string policyFile, IReadOnlyList<SignedZone> zones, IPEndPoint authority, IPEndPoint listen, string directory) =>
        $"""
        server:
            interface: {listen.Address}@{listen.Port}
            access-control: 127.0.0.0/8 allow
            # The authority is on loopback, which unbound refuses to ask by default.
            do-not-query-localhost: no
            username: ""
            chroot: ""
            directory: "{directory}"
            pidfile: ""
            num-threads: 1
            local-zone: "." refuse

        """
        + string.Concat(zones.Select(z => $"""
            trust-anchor: "{z.DelegationSigner}"
            # Names under "test." are a static local zone by default (RFC 6761 §6.2); resolve these.
            local-zone: "{z.Origin}" transparent

        """))
        + string.Concat(zones.Select(z => $"""
        stub-zone:
            name: "{z.Origin}"
            stub-addr: {authority.Address}@{authority.Port}

        """))
        + $"""
        include: "{policyFile}"

        """;

    public void Dispose() => process.Dispose();
}
