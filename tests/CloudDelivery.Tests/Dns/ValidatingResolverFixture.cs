using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Dns;

/// <summary>
/// A DNSSEC-signed corner of the internet on loopback, with Debian's unbound as the validating resolver
/// running the repository's own policy file (infra-bicep/resolver/unbound.conf). Started once per test
/// class: a zone <c>dnssec.test.</c> signed by ldns with a fresh key, served by nsd, and unbound with that
/// key's DS as trust anchor. In the zone:
/// <list type="bullet">
/// <item><see cref="SignedDomain"/>: MX, A and a DANE-EE TLSA record (3 1 1) for its SMTP server, all signed;</item>
/// <item><see cref="BogusDomain"/>: its MX record changed after signing, so validation fails (bogus);</item>
/// <item><see cref="BogusTlsaDomain"/>: MX and A signed, but its TLSA record changed after signing;</item>
/// <item><see cref="StrippedName"/>: a TXT record whose signature was removed.</item>
/// </list>
/// </summary>
public sealed class ValidatingResolverFixture : IAsyncLifetime
{
    public const string Zone = "dnssec.test";
    public const string SignedDomain = "signed.dnssec.test";
    public const string BogusDomain = "bogus.dnssec.test";
    public const string BogusTlsaDomain = "tlsabogus.dnssec.test";
    public const string StrippedName = "stripped.dnssec.test";

    private readonly string directory = Path.Combine(Path.GetTempPath(), $"clouddelivery-unbound-{Guid.NewGuid():N}");
    private NsdServer? authority;
    private UnboundResolver? unbound;

    public TestPki Pki { get; } = TestPki.Create();

    /// <summary>The port every SMTP server here listens on, each on its own loopback address.</summary>
    public int SmtpPort { get; } = LoopbackWorld.FreePort();

    public LoopbackSmtpServer SignedMx { get; private set; } = null!;

    public LoopbackSmtpServer BogusMx { get; private set; } = null!;

    public LoopbackSmtpServer BogusTlsaMx { get; private set; } = null!;

    /// <summary>The TLSA data (SHA-256 of the key) that pins <see cref="SignedMx"/>'s self-signed certificate.</summary>
    public byte[] SignedMxTlsaData { get; private set; } = [];

    public UnboundResolver Unbound => unbound!;

    /// <summary>The repository's resolver policy file, the one the site file includes.</summary>
    public static string PolicyFile => Path.Combine(RepositoryRoot(), "infra-bicep", "resolver", "unbound.conf");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(directory);
        // DANE-EE pins the key, so a self-signed certificate for an unrelated name is right (RFC 7672 §3.1.1).
        var daneCertificate = TestPki.SelfSigned("unrelated-name.invalid");
        SignedMxTlsaData = TestPki.TlsaData(daneCertificate, 1, 1);
        SignedMx = await StartMxAsync($"mx.{SignedDomain}", daneCertificate);
        // These two have certificates the engine trusts (test CA, right name): only DNSSEC can stop delivery.
        BogusMx = await StartMxAsync($"mx.{BogusDomain}", Pki.Issue([$"mx.{BogusDomain}"]));
        var bogusTlsaCertificate = Pki.Issue([$"mx.{BogusTlsaDomain}"]);
        BogusTlsaMx = await StartMxAsync($"mx.{BogusTlsaDomain}", bogusTlsaCertificate);

        var zone = await SignedZone.SignAsync(Zone, [
            .. MailDomain(SignedDomain, SignedMx, SignedMxTlsaData),
            .. MailDomain(BogusDomain, BogusMx, SignedMxTlsaData),
            .. MailDomain(BogusTlsaDomain, BogusTlsaMx, TestPki.TlsaData(bogusTlsaCertificate, 1, 1)),
            new SignedZoneRecord(StrippedName, "TXT", "\"signature removed\""),
        ], directory);
        zone.ChangeRecordData(BogusDomain, "MX", $"20 mx.{BogusDomain}.");
        zone.ChangeRecordData($"_25._tcp.mx.{BogusTlsaDomain}", "TLSA", $"3 1 1 {new string('0', 64)}");
        zone.RemoveSignatures(StrippedName, "TXT");

        authority = await NsdServer.StartAsync([zone], directory);
        unbound = await UnboundResolver.StartAsync(PolicyFile, [zone], authority.EndPoint, directory);
    }

    /// <summary>CloudDelivery's resolver, pointed at unbound.</summary>
    public global::CloudDelivery.Dns.DnsResolver CreateResolver() => new(ResolverOptions());

    /// <summary>An engine that dials loopback on <see cref="SmtpPort"/>, trusts the test CA and asks unbound.</summary>
    public DeliveryEngine CreateEngine() =>
        DeliveryEngine.Create(
            new DeliveryEngineOptions
            {
                EhloHostname = "sender.loopback.test",
                SmtpPort = SmtpPort,
                AddressPolicy = global::CloudDelivery.Dialing.AddressPolicy.AllowPrivate,
                ExtraTrustRoots = [Pki.Root],
                ConnectTimeout = TimeSpan.FromSeconds(5),
                CommandTimeout = TimeSpan.FromSeconds(10),
            },
            ResolverOptions(),
            new global::CloudDelivery.MtaSts.MtaStsFetchOptions
            {
                Timeout = TimeSpan.FromSeconds(5),
                AddressPolicy = global::CloudDelivery.Dialing.AddressPolicy.AllowPrivate,
                ExtraTrustRoots = [Pki.Root],
            });

    /// <summary>What unbound and nsd logged, for a failing test's output.</summary>
    public string Logs => $"--- unbound ({unbound?.SiteFile}):\n{unbound?.Log}\n--- nsd:\n{authority?.Log}";

    private global::CloudDelivery.Dns.DnsResolverOptions ResolverOptions() =>
        new() { Server = Unbound.EndPoint, QueryTimeout = TimeSpan.FromSeconds(3), Retries = 1 };

    private async Task<LoopbackSmtpServer> StartMxAsync(string hostName, System.Security.Cryptography.X509Certificates.X509Certificate2 certificate) =>
        await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions
        {
            Address = LoopbackWorld.NewAddress(),
            Port = SmtpPort,
            Hostname = hostName,
            Certificate = certificate,
            CertificateChain = [Pki.Root],
        });

    private static IEnumerable<SignedZoneRecord> MailDomain(string domain, LoopbackSmtpServer mx, byte[] tlsaData)
    {
        var host = $"mx.{domain}";
        yield return new SignedZoneRecord(domain, "MX", $"10 {host}.");
        yield return new SignedZoneRecord(host, "A", mx.EndPoint.Address.ToString());
        yield return new SignedZoneRecord($"_25._tcp.{host}", "TLSA", $"3 1 1 {Convert.ToHexString(tlsaData)}");
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "CloudDelivery.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"CloudDelivery.sln not found above {AppContext.BaseDirectory}");
    }

    public async Task DisposeAsync()
    {
        unbound?.Dispose();
        authority?.Dispose();
        foreach (var server in new[] { SignedMx, BogusMx, BogusTlsaMx })
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
        }
        Pki.Dispose();
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // A process still closing a file: the temporary directory is left behind, harmless.
        }
    }
}
