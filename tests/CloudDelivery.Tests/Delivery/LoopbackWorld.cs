using System.Net;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Https;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Telemetry;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// A small internet on loopback for one test: a validating-resolver-like DNS server, a test CA, SMTP
/// servers each on its own 127.x.y.z address (all on one port, the engine's SMTP port), and an HTTPS
/// MTA-STS policy server. Addresses are unique across tests so tests run in parallel.
/// </summary>
public sealed class LoopbackWorld : IAsyncDisposable
{
    private static int nextAddress;
    private readonly List<LoopbackSmtpServer> smtpServers = [];

    private LoopbackWorld(LoopbackDnsServer dns, TestPki pki, MtaStsPolicyServer mtaSts)
    {
        Dns = dns;
        Pki = pki;
        MtaSts = mtaSts;
    }

    public LoopbackDnsServer Dns { get; }

    public DnsZone Zone => Dns.Zone;

    public TestPki Pki { get; }

    public MtaStsPolicyServer MtaSts { get; }

    /// <summary>
    /// The port every SMTP server of this world listens on, each on its own address. Chosen at start, so
    /// engines can be created before the servers.
    /// </summary>
    public int SmtpPort { get; } = FreePort();

    public static async Task<LoopbackWorld> StartAsync()
    {
        var dns = await LoopbackDnsServer.StartAsync(new DnsZone());
        var mtaSts = await MtaStsPolicyServer.StartAsync(NewAddress());
        return new LoopbackWorld(dns, TestPki.Create(), mtaSts);
    }

    /// <summary>A TCP port free on 127.0.0.1 right now.</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A fresh loopback address no other test uses.</summary>
    public static IPAddress NewAddress()
    {
        var n = Interlocked.Increment(ref nextAddress);
        // 127.20.0.0/14 gives room for many tests; avoid .0 and .255 host parts.
        return new IPAddress([127, (byte)(20 + (n / 60000)), (byte)(n / 250 % 240), (byte)(n % 250 + 2)]);
    }

    /// <summary>
    /// Starts an SMTP server for MX host <paramref name="hostName"/> on a new address, adds the A record,
    /// and by default gives it a certificate for its name from the test CA.
    /// </summary>
    public async Task<LoopbackSmtpServer> AddMxServerAsync(string hostName, Action<LoopbackSmtpServerOptions>? configure = null, bool withCertificate = true, IPAddress? address = null)
    {
        address ??= NewAddress();
        var options = new LoopbackSmtpServerOptions
        {
            Address = address,
            Port = SmtpPort,
            Hostname = hostName,
            Certificate = withCertificate ? Pki.Issue([hostName]) : null,
            // The root goes along, as RFC 7672 §3.1.2 asks of DANE-TA servers.
            CertificateChain = [Pki.Root],
        };
        configure?.Invoke(options);
        var server = await LoopbackSmtpServer.StartAsync(options);
        smtpServers.Add(server);
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            Zone.AddAaaa(hostName, address.ToString());
        }
        else
        {
            Zone.AddA(hostName, address.ToString());
        }
        return server;
    }

    /// <summary>Publishes an MTA-STS policy for <paramref name="domain"/>: TXT record, address of mta-sts.domain, and the policy on the HTTPS server.</summary>
    public void PublishMtaSts(string domain, string mode, string[] mxPatterns, string id = "20261125", X509Certificate2? certificate = null, MtaStsServerBehaviour behaviour = MtaStsServerBehaviour.Normal)
    {
        var policy = $"version: STSv1\r\nmode: {mode}\r\n" + string.Concat(mxPatterns.Select(p => $"mx: {p}\r\n")) + "max_age: 86400\r\n";
        Zone.AddTxt($"_mta-sts.{domain}", $"v=STSv1; id={id}");
        Zone.AddA($"mta-sts.{domain}", MtaSts.EndPoint.Address.ToString());
        MtaSts.SetPolicy(domain, policy, certificate ?? Pki.Issue([$"mta-sts.{domain}"]), behaviour);
    }

    /// <summary>An engine that dials loopback, trusts the test CA and asks this world's DNS server.</summary>
    public DeliveryEngine CreateEngine(TimeSpan? commandTimeout = null, TimeProvider? time = null, bool allowPrivateAddresses = true, DeliveryMetrics? metrics = null, int maxSessionsPerHost = 4, TimeSpan? mtaStsFetchTimeout = null, TimeSpan? sessionTimeout = null, global::CloudDelivery.Shaping.TrafficShapingRules? shaping = null) =>
        DeliveryEngine.Create(
            new DeliveryEngineOptions
            {
                EhloHostname = "sender.loopback.test",
                SmtpPort = SmtpPort,
                AddressPolicy = allowPrivateAddresses ? global::CloudDelivery.Dialing.AddressPolicy.AllowPrivate : global::CloudDelivery.Dialing.AddressPolicy.PublicOnly,
                ExtraTrustRoots = [Pki.Root],
                ConnectTimeout = TimeSpan.FromSeconds(5),
                CommandTimeout = commandTimeout ?? TimeSpan.FromSeconds(10),
                SessionTimeout = sessionTimeout ?? TimeSpan.FromMinutes(30),
                MaxSessionsPerHost = maxSessionsPerHost,
                Shaping = shaping ?? global::CloudDelivery.Shaping.TrafficShapingRules.Default,
            },
            new global::CloudDelivery.Dns.DnsResolverOptions { Server = Dns.EndPoint, QueryTimeout = TimeSpan.FromSeconds(2) },
            new global::CloudDelivery.MtaSts.MtaStsFetchOptions
            {
                HttpsPort = MtaSts.EndPoint.Port,
                Timeout = mtaStsFetchTimeout ?? TimeSpan.FromMinutes(1),
                AddressPolicy = allowPrivateAddresses ? global::CloudDelivery.Dialing.AddressPolicy.AllowPrivate : global::CloudDelivery.Dialing.AddressPolicy.PublicOnly,
                ExtraTrustRoots = [Pki.Root],
            },
            time: time,
            metrics: metrics);

    public async ValueTask DisposeAsync()
    {
        foreach (var server in smtpServers)
        {
            await server.DisposeAsync();
        }
        await MtaSts.DisposeAsync();
        await Dns.DisposeAsync();
        Pki.Dispose();
    }
}
