using Microsoft.Extensions.Configuration;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// The "CloudDelivery:Telemetry" settings (environment: CloudDelivery__Telemetry__Exporter and so on).
/// Bound on their own rather than as part of CloudDeliveryOptions: only the telemetry registration reads them.
/// </summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "CloudDelivery:Telemetry";

    /// <summary>
    /// auto | azuremonitor | otlp | console | none. auto picks azuremonitor when
    /// APPLICATIONINSIGHTS_CONNECTION_STRING is set, otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none,
    /// so a local run prints nothing extra. Empty (or an empty environment variable) means auto.
    /// </summary>
    public string? Exporter { get; set; } = "auto";

    /// <summary>
    /// How often <c>serve</c> refreshes the queue gauges' snapshot (one bounded storage pass each time); the
    /// gauges report a snapshot for three intervals. Five minutes: the Functions timer's period too.
    /// </summary>
    public TimeSpan QueueSampleInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Pages of 1000 records one sample reads at most; past it the record gauges are lower bounds.</summary>
    public int QueueSampleMaxPages { get; set; } = 20;

    /// <summary>Export Azure SDK spans (storage calls) as traces. The wake-up poll makes a call every few seconds.</summary>
    public bool Traces { get; set; } = true;

    /// <summary>
    /// Application Insights only: the fraction of traces (requests and dependencies) kept, 0 to 1, the same
    /// for every trace. Unset: the package's rate-limited sampler (see <see cref="TracesPerSecond"/>).
    /// Metrics are never sampled; log records (RecipientResult among them) are not either.
    /// </summary>
    public float? SamplingRatio { get; set; }

    /// <summary>
    /// Application Insights only: the traces kept per second and instance by the rate-limited sampler.
    /// Unset: the package's default (5 per second) unless <see cref="SamplingRatio"/> is set.
    /// </summary>
    public double? TracesPerSecond { get; set; }

    /// <summary>Application Insights only: the live metrics stream (a second channel, polled every few seconds).</summary>
    public bool LiveMetrics { get; set; }

    /// <summary>Application Insights only: the exporter's statsbeat and SDK stats (its usage reports to Microsoft's endpoints and to the resource).</summary>
    public bool Statsbeat { get; set; }

    /// <summary>The settings of <paramref name="configuration"/>'s "CloudDelivery:Telemetry" section (defaults when it is absent).</summary>
    public static TelemetryOptions From(IConfiguration configuration) =>
        configuration.GetSection(SectionName).Get<TelemetryOptions>() ?? new TelemetryOptions();

    /// <summary>The exporter <paramref name="configuration"/> asks for, auto resolved.</summary>
    /// <exception cref="FormatException">An unknown exporter name.</exception>
    public static TelemetryExporter ResolveExporter(IConfiguration configuration) => From(configuration).ResolveExporterIn(configuration);

    /// <summary>The exporter <see cref="Exporter"/> stands for, with auto resolved against <paramref name="configuration"/>.</summary>
    /// <exception cref="FormatException">An unknown exporter name.</exception>
    public TelemetryExporter ResolveExporterIn(IConfiguration configuration) => (Exporter ?? string.Empty).Trim().ToLowerInvariant() switch
    {
        "auto" or "" => !string.IsNullOrWhiteSpace(configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"])
            ? TelemetryExporter.AzureMonitor
            : !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) ? TelemetryExporter.Otlp : TelemetryExporter.None,
        "azuremonitor" => TelemetryExporter.AzureMonitor,
        "otlp" => TelemetryExporter.Otlp,
        "console" => TelemetryExporter.Console,
        "none" => TelemetryExporter.None,
        _ => throw new FormatException($"{SectionName}:Exporter {Exporter} is not one of auto, azuremonitor, otlp, console, none"),
    };
}

/// <summary>Where metrics, traces and logs go.</summary>
public enum TelemetryExporter
{
    None,
    AzureMonitor,
    Otlp,
    Console,
}
