using Azure.Core;
using Azure.Identity;
using Azure.Monitor.OpenTelemetry.Exporter;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
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
                // The Application Insights resource has local authentication disabled: ingestion needs an
                // Entra ID token, from the app's user-assigned identity when one is configured.
                var credential = AzureCredential(configuration["CloudDelivery:ManagedIdentityClientId"]);
                telemetry.UseAzureMonitorExporter(azure =>
                {
                    azure.Credential = credential;
                    if (configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"] is { Length: > 0 } connectionString)
                    {
                        azure.ConnectionString = connectionString;
                    }
                });
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

    /// <summary>The user-assigned identity named by its client id, or the default chain (developer logins, system identity).</summary>
    public static TokenCredential AzureCredential(string? managedIdentityClientId) =>
        string.IsNullOrWhiteSpace(managedIdentityClientId)
            ? new DefaultAzureCredential()
            : new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(managedIdentityClientId));
}
