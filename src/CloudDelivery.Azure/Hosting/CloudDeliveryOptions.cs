using System.Net;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.MtaSts;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// The one options tree of CloudDelivery, bound from the "CloudDelivery" configuration section in both
/// hosts (app settings in Azure Functions, environment or appsettings.json for <c>serve</c>): environment
/// variables are named like CloudDelivery__Storage__ConnectionString.
/// </summary>
public sealed class CloudDeliveryOptions
{
    public const string SectionName = "CloudDelivery";

    /// <summary>Our host name: EHLO, DSN Reporting-MTA and MAILER-DAEMON address. Must have forward and reverse DNS.</summary>
    public string Hostname { get; set; } = System.Net.Dns.GetHostName();

    /// <summary>
    /// Client ID of the user-assigned managed identity the app uses for Azure (storage when
    /// Storage:AccountName is set, the Azure Monitor exporter). Empty: DefaultAzureCredential
    /// (a system-assigned identity in Azure, the developer's sign-in locally). See <see cref="AzureCredentials"/>.
    /// </summary>
    public string? ManagedIdentityClientId { get; set; }

    public OutboundStorageOptions Storage { get; set; } = new();

    public OutboundQueueOptions Queue { get; set; } = new();

    public WakeUpWorkerOptions Worker { get; set; } = new();

    public DeliveryConfiguration Delivery { get; set; } = new();

    /// <summary>A relay for some or all senders; unset means direct delivery to MX hosts.</summary>
    public SmarthostConfiguration Smarthost { get; set; } = new();

    /// <summary>TLSRPT (RFC 8460): recording results and sending daily reports.</summary>
    public TlsRptOptions TlsRpt { get; set; } = new();

    /// <summary>The MTA-STS policy refresher (the cache itself is Storage:MtaStsTable).</summary>
    public MtaStsRefreshOptions MtaSts { get; set; } = new();

    /// <summary>DKIM signing keys per From domain; private keys as Key Vault references in Azure.</summary>
    public DkimConfiguration Dkim { get; set; } = new();
}

/// <summary>Smarthost settings in bindable form. Keep the password in Key Vault (a secret reference).</summary>
public sealed class SmarthostConfiguration
{
    /// <summary>Host name or IP; empty disables the smarthost.</summary>
    public string? Host { get; set; }

    public int Port { get; set; } = 587;

    public string? UserName { get; set; }

    public string? Password { get; set; }

    /// <summary>Comma-separated sender domains that use the relay; empty means all senders.</summary>
    public string? SenderDomains { get; set; }

    public SmarthostSettings? ToSettings() => string.IsNullOrWhiteSpace(Host) ? null : new SmarthostSettings
    {
        Host = Host,
        Port = Port,
        UserName = string.IsNullOrEmpty(UserName) ? null : UserName,
        Password = Password,
        SenderDomains = (SenderDomains ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
    };
}

/// <summary>Direct-delivery settings in bindable form (strings and numbers).</summary>
public sealed class DeliveryConfiguration
{
    /// <summary>DNS resolver as "ip:port"; empty for the system's.</summary>
    public string? Resolver { get; set; }

    public int SmtpPort { get; set; } = 25;

    public int MtaStsHttpsPort { get; set; } = 443;

    public bool AllowPrivateAddresses { get; set; }

    /// <summary>Path of a PEM file with extra trusted roots.</summary>
    public string? TrustCaFile { get; set; }

    public int ConnectTimeoutSeconds { get; set; } = 30;

    /// <summary>Deadline for each complete SMTP reply (the greeting too); not an idle timeout.</summary>
    public int CommandTimeoutSeconds { get; set; } = 300;

    /// <summary>Time allowed for a whole MTA-STS policy fetch (headers and body).</summary>
    public int MtaStsFetchTimeoutSeconds { get; set; } = 60;

    /// <summary>Deadline for one SMTP connection as a whole, over all its transactions.</summary>
    public int SessionTimeoutSeconds { get; set; } = 1800;

    /// <summary>Most SMTP sessions a delivery run opens in parallel to one MX host (1: one connection per run).</summary>
    public int MaxSessionsPerHost { get; set; } = 4;

    /// <summary>The engine's settings.</summary>
    /// <exception cref="FormatException">The resolver is not "ip:port".</exception>
    public DeliverySettings ToSettings(string ehloHostname)
    {
        IPEndPoint? resolver = null;
        if (!string.IsNullOrWhiteSpace(Resolver) && !IPEndPoint.TryParse(Resolver, out resolver))
        {
            throw new FormatException($"CloudDelivery:Delivery:Resolver {Resolver} is not an IP address and port");
        }
        if (resolver is { Port: 0 })
        {
            resolver.Port = 53;
        }
        X509Certificate2Collection? roots = null;
        if (!string.IsNullOrWhiteSpace(TrustCaFile))
        {
            roots = [];
            roots.ImportFromPemFile(TrustCaFile);
        }
        return new DeliverySettings
        {
            Resolver = resolver,
            EhloHostname = ehloHostname,
            SmtpPort = SmtpPort,
            MtaStsHttpsPort = MtaStsHttpsPort,
            AllowPrivateAddresses = AllowPrivateAddresses,
            ExtraTrustRoots = roots,
            ConnectTimeout = TimeSpan.FromSeconds(ConnectTimeoutSeconds),
            CommandTimeout = TimeSpan.FromSeconds(CommandTimeoutSeconds),
            MtaStsFetchTimeout = TimeSpan.FromSeconds(Math.Max(1, MtaStsFetchTimeoutSeconds)),
            SessionTimeout = TimeSpan.FromSeconds(SessionTimeoutSeconds),
            MaxSessionsPerHost = Math.Max(1, MaxSessionsPerHost),
        };
    }
}
