using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Submission;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CloudDelivery.Functions;

/// <summary>
/// GET /api/healthz: the Functions side of serve's <c>/healthz</c>. The runtime owns the queue trigger and
/// the timers (it retries and poisons on its own), so what this reports is whether storage answers this
/// instance, with the same check and the same JSON as <c>serve</c>: 200 healthy or degraded, 503 unhealthy.
/// </summary>
public sealed class HealthFunctions(HealthCheckService health)
{
    [Function(nameof(Health))]
    public async Task<IResult> Health([HttpTrigger(AuthorizationLevel.Function, "get", Route = "healthz")] HttpRequest request, CancellationToken cancellationToken)
    {
        var report = await health.CheckHealthAsync(cancellationToken);
        return new JsonApiResult(report.Status == HealthStatus.Unhealthy ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK, ServiceHealthCheck.ToJson(report));
    }
}
