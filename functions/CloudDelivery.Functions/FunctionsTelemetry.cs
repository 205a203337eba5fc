using CloudDelivery.Azure.Telemetry;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Functions;

/// <summary>The Functions worker's telemetry registration (Program.cs), apart so tests build the same one.</summary>
public static class FunctionsTelemetry
{
    /// <summary>
    /// host.json sets "telemetryMode": "OpenTelemetry": the host no longer sends the worker's telemetry, the
    /// worker exports it itself. AddCloudDeliveryTelemetry adds our meters, the Azure SDK spans, logs and the
    /// one exporter, as in <c>serve</c>; the Functions defaults then add the invocation spans and the cloud
    /// role resource to the same providers (AddOpenTelemetry is one registration per service collection).
    /// In this order: the Application Insights registration starts the resource anew (dropping the package's
    /// VM metadata probe), and the Functions resource detector must come after that.
    /// </summary>
    public static TelemetryExporter AddFunctionsTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var exporter = services.AddCloudDeliveryTelemetry(configuration);
        services.AddOpenTelemetry().UseFunctionsWorkerDefaults();
        return exporter;
    }
}
