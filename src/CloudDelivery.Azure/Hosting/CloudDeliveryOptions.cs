using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.MtaSts;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// The host's own settings and the sections still bound with it, from the "CloudDelivery" configuration
/// section in both hosts (app settings in Azure Functions, environment or appsettings.json for
/// <c>serve</c>): environment variables are named like CloudDelivery__Storage__ConnectionString. Delivery
/// and the smarthost have their own options types, bound from <see cref="DeliverySection"/> and
/// <see cref="SmarthostSection"/>, as DKIM signing has (<see cref="DkimOptions.SectionPath"/>).
/// </summary>
public sealed class CloudDeliveryOptions
{
    public const string SectionName = "CloudDelivery";

    /// <summary>Direct delivery's section, bound into <see cref="DeliveryOptions"/> by <see cref="DeliveryServices.AddDeliveryEngine"/>.</summary>
    public const string DeliverySection = SectionName + ":Delivery";

    /// <summary>The relay's section (unset: direct delivery to MX hosts), bound into <see cref="SmarthostOptions"/> by <see cref="DeliveryServices.AddSmarthost"/>.</summary>
    public const string SmarthostSection = SectionName + ":Smarthost";

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

    /// <summary>TLSRPT (RFC 8460): recording results and sending daily reports.</summary>
    public TlsRptOptions TlsRpt { get; set; } = new();

    /// <summary>The MTA-STS policy refresher (the cache itself is Storage:MtaStsTable).</summary>
    public MtaStsRefreshOptions MtaSts { get; set; } = new();

    /// <summary>The suppression list: automatic additions from bounces and the check at submission.</summary>
    public Suppression.SuppressionOptions Suppression { get; set; } = new();
}
