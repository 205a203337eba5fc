using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace CloudDelivery.Delivery;

/// <summary>
/// The settings of direct delivery in one flat object, as hosts bind them from configuration (the CLI's
/// options, app settings later). <see cref="DeliveryEngine.Create"/> wires the engine from them.
/// </summary>
public sealed class DeliverySettings
{
    /// <summary>DNS resolver for every lookup; null for the system's. Point it at a validating resolver for DANE.</summary>
    public IPEndPoint? Resolver { get; init; }

    /// <summary>Our host name in EHLO.</summary>
    public required string EhloHostname { get; init; }

    /// <summary>Port of MX hosts; 25 except in tests.</summary>
    public int SmtpPort { get; init; } = 25;

    /// <summary>Port of MTA-STS policy hosts; 443 except in tests.</summary>
    public int MtaStsHttpsPort { get; init; } = 443;

    /// <summary>Dial private, loopback and link-local addresses (tests, closed networks).</summary>
    public bool AllowPrivateAddresses { get; init; }

    /// <summary>Roots trusted for WebPKI (SMTP and MTA-STS) in addition to the system store.</summary>
    public X509Certificate2Collection? ExtraTrustRoots { get; init; }

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Deadline for each complete SMTP reply (see <see cref="DeliveryEngineOptions.CommandTimeout"/>).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Deadline for one SMTP connection as a whole (see <see cref="DeliveryEngineOptions.SessionTimeout"/>).</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Most sessions opened in parallel to one MX host for a delivery with many messages.</summary>
    public int MaxSessionsPerHost { get; init; } = 4;

    /// <summary>Time allowed for one DNS query; a lookup (all tries) gets three times this.</summary>
    public TimeSpan DnsTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Time allowed for a whole MTA-STS policy fetch: address lookup, connect, TLS, headers and body, so a
    /// host that drips its answer byte by byte fails in time too.
    /// </summary>
    public TimeSpan MtaStsFetchTimeout { get; init; } = TimeSpan.FromMinutes(1);
}
