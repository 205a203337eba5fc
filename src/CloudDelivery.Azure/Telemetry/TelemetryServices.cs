using Azure.Core;
using Azure.Identity;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// Telemetry the same way for the Functions worker and <c>serve</c>: the queue sampler, and OpenTelemetry
/// metrics (CloudDelivery.Delivery, CloudDelivery.Queue), traces (Azure SDK spans) and logs, exported to
/// Azure Monitor, OTLP or the console as <see cref="TelemetryOptions.Exporter"/> says.
/// </summary>
public static class TelemetryServices
{
    /// <summary>The Azure SDK's activity sources ("Azure.Storage.Queues.QueueClient" and so on).</summary>
    public const string AzureSdkSources = "Azure.*";

    /// <summary>The service name (cloud role) when not on App Service / Functions and OTEL_SERVICE_NAME is unset.</summary>
    public const string DefaultServiceName = "clouddelivery";

    /// <summary>The Azure Monitor exporter's switch for its statsbeat (an environment variable only).</summary>
    public const string StatsbeatDisabledVariable = "APPLICATIONINSIGHTS_STATSBEAT_DISABLED";

    /// <summary>The Azure Monitor exporter's switch for its SDK stats (an environment variable only).</summary>
    public const string SdkStatsDisabledVariable = "APPLICATIONINSIGHTS_SDKSTATS_DISABLED";


    /// <summary>
    /// Registers the sampler and, unless the exporter resolves to none, OpenTelemetry with that exporter.
    /// Call after AddCloudDelivery. Returns the exporter in use.
    /// </summary>
    /// <exception cref="FormatException">CloudDelivery:Telemetry:Exporter is not a known exporter.</exception>
    public static TelemetryExporter AddCloudDeliveryTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var options = TelemetryOptions.From(configuration);
        services.AddSingleton(options);
        services.AddSingleton(p => new QueueSampler(
            p.GetRequiredService<OutboundStorage>(),
            p.GetRequiredService<QueueMetrics>(),
            options,
            p.GetRequiredService<TimeProvider>(),
            p.GetService<ILogger<QueueSampler>>()));

        var exporter = options.ResolveExporterIn(configuration);
        if (exporter == TelemetryExporter.None)
        {
            return exporter;
        }

        if (options.Traces)
        {
            // The Azure SDK creates its spans through ActivitySource only with this switch (it is still
            // marked experimental); without it there is nothing for AddSource to listen to.
            AppContext.SetSwitch("Azure.Experimental.EnableActivitySource", true);
        }
        // One OpenTelemetry registration per service collection: whatever else calls AddOpenTelemetry (the
        // Application Insights package, the Functions worker defaults) adds to these same three providers,
        // so there is one meter provider with our meters and one set of exporters.
        var telemetry = services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics.AddMeter(DeliveryMetrics.MeterName, QueueMetrics.MeterName))
            .WithLogging();
        if (options.Traces)
        {
            telemetry.WithTracing(tracing => tracing.AddSource(AzureSdkSources));
        }
        // ASP.NET Core logs every request line, query string included, at information level: a submission's
        // ?to=<address> must not leave the process that way.
        services.AddLogging(logging => logging.AddFilter<OpenTelemetryLoggerProvider>("Microsoft.AspNetCore", LogLevel.Warning));

        switch (exporter)
        {
            case TelemetryExporter.AzureMonitor:
                AddApplicationInsights(services, configuration, options);
                break;
            case TelemetryExporter.Otlp:
                // Endpoint, protocol and headers come from the standard OTEL_EXPORTER_OTLP_* settings.
                telemetry.UseOtlpExporter();
                break;
            case TelemetryExporter.Console:
                telemetry.WithMetrics(metrics => metrics.AddConsoleExporter()).WithLogging(logging => logging.AddConsoleExporter());
                if (options.Traces)
                {
                    telemetry.WithTracing(tracing => tracing.AddConsoleExporter());
                }
                break;
        }
        return exporter;
    }

    /// <summary>
    /// Application Insights through Microsoft.ApplicationInsights.WorkerService: the package registers the Azure
    /// Monitor exporter on the shared OpenTelemetry providers (so our meters and log events go as they are),
    /// its own Azure SDK, HttpClient and SqlClient spans, and a TelemetryClient.
    /// </summary>
    private static void AddApplicationInsights(IServiceCollection services, IConfiguration configuration, TelemetryOptions options)
    {
        // Statsbeat is the exporter's report about itself to Microsoft's own ingestion endpoints (fixed
        // addresses, not the connection string's); SDK stats are its report to our resource (more ingestion).
        // Both probe the VM metadata service (169.254.169.254) off Azure's app platforms. The exporter reads
        // only these environment variables for them: off unless asked for, so the app dials nothing it was
        // not told to.
        if (!options.Statsbeat)
        {
            foreach (var variable in (string[])[StatsbeatDisabledVariable, SdkStatsDisabledVariable])
            {
                if (Environment.GetEnvironmentVariable(variable) is null)
                {
                    Environment.SetEnvironmentVariable(variable, "true");
                }
            }
        }
        // The Application Insights resource has local authentication disabled: ingestion needs an Entra ID
        // token, from the app's user-assigned identity when one is configured.
        var credential = AzureCredential(configuration["CloudDelivery:ManagedIdentityClientId"]);
        services.AddApplicationInsightsTelemetryWorkerService(ai =>
        {
            ai.Credential = credential;
            if (configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"] is { Length: > 0 } connectionString)
            {
                ai.ConnectionString = connectionString;
            }
            // Live metrics keeps a second channel open to a live-diagnostics endpoint and polls it every few
            // seconds from each instance; nothing here reads it, and it keeps an idle app busy.
            ai.EnableQuickPulseMetricStream = options.LiveMetrics;
            // Process counters (CPU, memory) as customMetrics: volume nobody queries; the platform has them.
            ai.EnablePerformanceCounterCollectionModule = false;
            // Without Traces only the Functions invocations (server spans) are kept, not the storage calls.
            ai.EnableDependencyTrackingTelemetryModule = options.Traces;
            // Sampling applies to traces (requests and dependencies). Log records are kept whatever their
            // trace's fate: RecipientResult is the per-recipient record the workbook counts.
            ai.EnableTraceBasedLogsSampler = false;
            if (options.SamplingRatio is { } ratio)
            {
                ai.SamplingRatio = ratio;
            }
            if (options.TracesPerSecond is { } perSecond)
            {
                ai.TracesPerSecond = perSecond;
            }
        });
        // The package's resource includes a VM detector that calls the instance metadata service
        // (169.254.169.254) once at startup with a two-second timeout: a stall on Functions and containers,
        // where it never answers, and a dial outside what the app was told to reach. Start the resource
        // anew with what needs no network: the OTEL_* environment, the App Service / Functions variables.
        services.AddOpenTelemetry().ConfigureResource(resource => resource
            .Clear()
            .AddService(configuration["WEBSITE_SITE_NAME"] is { Length: > 0 } site ? site : DefaultServiceName, serviceInstanceId: configuration["WEBSITE_INSTANCE_ID"] ?? Environment.MachineName)
            .AddTelemetrySdk()
            .AddEnvironmentVariableDetector());
    }

    /// <summary>The user-assigned identity named by its client id, or the default chain (developer logins, system identity).</summary>
    public static TokenCredential AzureCredential(string? managedIdentityClientId) =>
        string.IsNullOrWhiteSpace(managedIdentityClientId)
            ? new DefaultAzureCredential()
            : new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(managedIdentityClientId));
}
