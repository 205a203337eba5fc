using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.MtaSts;

namespace CloudDelivery.Delivery;

/// <summary>
/// Direct delivery's settings as configuration holds them (strings and whole seconds), bound as they are
/// from one configuration section by every host. <see cref="Problems"/> is the start-up check; the
/// engine's own, resolved form (<see cref="DeliveryEngineOptions"/>) exists because it carries parsed
/// values: an <see cref="IPEndPoint"/>, loaded X.509 roots and an <see cref="AddressPolicy"/>.
/// </summary>
public sealed class DeliveryOptions
{
    /// <summary>DNS resolver as "ip:port" (port 0 or none: 53); empty for the system's. Point it at a validating resolver for DANE.</summary>
    public string? Resolver { get; set; }

    /// <summary>Port of MX hosts: 25 (RFC 5321 §4.5.4.2); other values are for tests.</summary>
    public int SmtpPort { get; set; } = 25;

    /// <summary>Port of MTA-STS policy hosts: 443 (RFC 8461 §3.3); other values are for tests.</summary>
    public int MtaStsHttpsPort { get; set; } = 443;

    /// <summary>Dial private, loopback and link-local addresses (tests, closed networks).</summary>
    public bool AllowPrivateAddresses { get; set; }

    /// <summary>
    /// PEM file of roots trusted for WebPKI in addition to the system store; several files are separated by
    /// the platform's path separator, as in PATH (the CLI's repeated --trust-ca writes them so).
    /// </summary>
    public string? TrustCaFile { get; set; }

    public int ConnectTimeoutSeconds { get; set; } = 30;

    /// <summary>Deadline for each complete SMTP reply (see <see cref="DeliveryEngineOptions.CommandTimeout"/>).</summary>
    public int CommandTimeoutSeconds { get; set; } = 300;

    /// <summary>Time allowed for a whole MTA-STS policy fetch: a host that drips its answer fails in time too.</summary>
    public int MtaStsFetchTimeoutSeconds { get; set; } = 60;

    /// <summary>Deadline for one SMTP connection as a whole (see <see cref="DeliveryEngineOptions.SessionTimeout"/>).</summary>
    public int SessionTimeoutSeconds { get; set; } = 1800;

    /// <summary>Most SMTP sessions a delivery run opens in parallel to one MX host (1: one connection per run).</summary>
    public int MaxSessionsPerHost { get; set; } = 4;

    /// <summary>The check that <see cref="Resolver"/> validates DNSSEC, as DANE needs (see <see cref="ResolverSelfCheck"/>).</summary>
    public ResolverCheckOptions ResolverCheck { get; set; } = new();

    /// <summary>
    /// What is wrong with these settings, one line each, every line starting with the key at
    /// <paramref name="section"/> and its value ("CloudDelivery:Delivery:SmtpPort 0: …").
    /// </summary>
    public IEnumerable<string> Problems(string section)
    {
        if (!string.IsNullOrWhiteSpace(Resolver) && !IPEndPoint.TryParse(Resolver, out _))
        {
            yield return $"{section}:{nameof(Resolver)} {Resolver}: expected an IP address and port, e.g. 127.0.0.1:53";
        }
        foreach (var (name, port) in new[] { (nameof(SmtpPort), SmtpPort), (nameof(MtaStsHttpsPort), MtaStsHttpsPort) })
        {
            if (port is < IPEndPoint.MinPort + 1 or > IPEndPoint.MaxPort)
            {
                yield return $"{section}:{name} {Invariant(port)}: expected a port from 1 to 65535";
            }
        }
        foreach (var (name, value) in new[]
        {
            (nameof(ConnectTimeoutSeconds), ConnectTimeoutSeconds), (nameof(CommandTimeoutSeconds), CommandTimeoutSeconds),
            (nameof(MtaStsFetchTimeoutSeconds), MtaStsFetchTimeoutSeconds), (nameof(SessionTimeoutSeconds), SessionTimeoutSeconds),
            (nameof(MaxSessionsPerHost), MaxSessionsPerHost),
        })
        {
            if (value < 1)
            {
                yield return $"{section}:{name} {Invariant(value)}: expected a whole number of at least 1";
            }
        }
        foreach (var problem in ResolverCheck.Problems($"{section}:{nameof(ResolverCheck)}"))
        {
            yield return problem;
        }
        foreach (var file in TrustCaFiles)
        {
            if (TryLoad(file, []) is { } error)
            {
                yield return $"{section}:{nameof(TrustCaFile)} {file}: {error}";
            }
        }
    }

    /// <summary>The resolver's end point, null for the system's.</summary>
    /// <exception cref="FormatException">The resolver is not "ip:port" (<see cref="Problems"/> says so first at start-up).</exception>
    public IPEndPoint? ResolverEndPoint()
    {
        if (string.IsNullOrWhiteSpace(Resolver))
        {
            return null;
        }
        if (!IPEndPoint.TryParse(Resolver, out var endPoint))
        {
            throw new FormatException($"{nameof(Resolver)} {Resolver}: expected an IP address and port, e.g. 127.0.0.1:53");
        }
        if (endPoint.Port == 0)
        {
            endPoint.Port = 53;
        }
        return endPoint;
    }

    /// <summary>The extra roots of <see cref="TrustCaFile"/>, null when none are configured.</summary>
    /// <exception cref="FormatException">A file is unreadable or not PEM.</exception>
    public X509Certificate2Collection? LoadTrustRoots()
    {
        X509Certificate2Collection? roots = null;
        foreach (var file in TrustCaFiles)
        {
            roots ??= [];
            if (TryLoad(file, roots) is { } error)
            {
                throw new FormatException($"{nameof(TrustCaFile)} {file}: {error}");
            }
        }
        return roots;
    }

    /// <summary>
    /// The engine's resolved form of these settings, with <paramref name="ehloHostname"/> (the host's name,
    /// configured apart) and the operator's <paramref name="rules"/> (each from its own section; defaults when null).
    /// </summary>
    public DeliveryEngineOptions ToEngineOptions(string ehloHostname, X509Certificate2Collection? roots, DeliveryRules? rules = null) => new()
    {
        Classifier = (rules ?? DeliveryRules.Default).Classifier,
        Shaping = (rules ?? DeliveryRules.Default).Shaping,
        TlsPolicies = (rules ?? DeliveryRules.Default).TlsPolicies,
        EhloHostname = ehloHostname,
        SmtpPort = SmtpPort,
        AddressPolicy = Policy,
        ExtraTrustRoots = roots,
        ConnectTimeout = TimeSpan.FromSeconds(ConnectTimeoutSeconds),
        CommandTimeout = TimeSpan.FromSeconds(CommandTimeoutSeconds),
        SessionTimeout = TimeSpan.FromSeconds(SessionTimeoutSeconds),
        MaxSessionsPerHost = MaxSessionsPerHost,
    };

    public DnsResolverOptions ToDnsResolverOptions() => new() { Server = ResolverEndPoint() };

    public MtaStsFetchOptions ToMtaStsFetchOptions(X509Certificate2Collection? roots) => new()
    {
        HttpsPort = MtaStsHttpsPort,
        Timeout = TimeSpan.FromSeconds(MtaStsFetchTimeoutSeconds),
        AddressPolicy = Policy,
        ExtraTrustRoots = roots,
    };

    private AddressPolicy Policy => AllowPrivateAddresses ? AddressPolicy.AllowPrivate : AddressPolicy.PublicOnly;

    private IEnumerable<string> TrustCaFiles => (TrustCaFile ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string? TryLoad(string file, X509Certificate2Collection into)
    {
        try
        {
            into.ImportFromPemFile(file);
            return null;
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
