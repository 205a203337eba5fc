using System.Diagnostics.Metrics;

namespace CloudDelivery.Telemetry;

/// <summary>
/// The engine's counters, on the meter "CloudDelivery.Delivery" (System.Diagnostics.Metrics, so
/// OpenTelemetry or Application Insights can export them). Their meanings follow mox's queue metrics.
/// </summary>
public sealed class DeliveryMetrics : IDisposable
{
    public const string MeterName = "CloudDelivery.Delivery";

    private readonly Meter meter;

    /// <summary>The meter the instruments belong to (one per instance, so listeners can tell engines apart).</summary>
    public Meter Meter => meter;

    public DeliveryMetrics(IMeterFactory? factory = null)
    {
        meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        Destinations = meter.CreateCounter<long>("clouddelivery.delivery.destinations", description: "Hosts (MX targets) for which a delivery attempt was started, including authentic ones.");
        DestinationsAuthentic = meter.CreateCounter<long>("clouddelivery.delivery.destinations.authentic", description: "Hosts whose MX and address records were DNSSEC-authentic, making DANE possible.");
        DaneRequired = meter.CreateCounter<long>("clouddelivery.delivery.dane.required", description: "Connections to hosts with TLSA records, which makes DANE (and so STARTTLS) required.");
        DaneUnverified = meter.CreateCounter<long>("clouddelivery.delivery.dane.starttls_unverified", description: "Connections with DANE required where no TLSA record was usable: STARTTLS without verification.");
        TlsaErrors = meter.CreateCounter<long>("clouddelivery.delivery.dane.tlsa_errors", description: "Connections where looking up TLSA records failed.");
        TlsRequiredNoIgnored = meter.CreateCounter<long>("clouddelivery.delivery.tls_required_no.ignored", description: "Policy findings ignored because of a TLS-Required: No header; tag reason: mtastspolicy, mtastsmx, badtls, badtlsa, daneverification.");
        RequireTlsUnsupported = meter.CreateCounter<long>("clouddelivery.delivery.requiretls.unsupported", description: "Attempts of REQUIRETLS messages that failed; tag reason: nopolicy (no DANE, no enforced MTA-STS) or norequiretls (server lacks the extension).");
        PlaintextFallbacks = meter.CreateCounter<long>("clouddelivery.delivery.plaintext_fallbacks", description: "Attempts repeated without TLS after a TLS failure, when nothing required TLS.");
        Connections = meter.CreateCounter<long>("clouddelivery.delivery.connections", description: "Outgoing SMTP connection attempts; tag result: ok, timeout, refused, error.");
        ShapingThrottled = meter.CreateCounter<long>("clouddelivery.shaping.throttled", description: "Throttling replies from receivers that slowed and paused a traffic-shaping budget; tag key (the budget).");
        ShapingDeferred = meter.CreateCounter<long>("clouddelivery.shaping.deferred", description: "Recipients held back by traffic shaping, reported Deferred; tags key (the budget) and reason: rate, connections, paused.");
        ResolverChecks = meter.CreateCounter<long>("clouddelivery.resolver.checks", description: "Self-checks of the configured resolver's DNSSEC validation; tags result (validating, not-validating, unreachable) and resolver (address or system).");
        DeliveryDuration = meter.CreateHistogram<double>("clouddelivery.delivery.duration", unit: "s", description: "Duration of delivery attempts to one host; tags result (delivered, temporary, permanent, partial, error) and tls_mode.");
    }

    public Counter<long> Destinations { get; }

    public Counter<long> DestinationsAuthentic { get; }

    public Counter<long> DaneRequired { get; }

    public Counter<long> DaneUnverified { get; }

    public Counter<long> TlsaErrors { get; }

    public Counter<long> TlsRequiredNoIgnored { get; }

    public Counter<long> RequireTlsUnsupported { get; }

    public Counter<long> PlaintextFallbacks { get; }

    public Counter<long> Connections { get; }

    public Counter<long> ShapingThrottled { get; }

    public Counter<long> ShapingDeferred { get; }

    public Counter<long> ResolverChecks { get; }

    public Histogram<double> DeliveryDuration { get; }

    public void Dispose() => meter.Dispose();
}
