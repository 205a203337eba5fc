using System.Net;
using CloudDelivery.Azure.Hosting;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Http;
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
    public async Task<HttpResponseData> Health([HttpTrigger(AuthorizationLevel.Function, "get", Route = "healthz")] HttpRequestData request, CancellationToken cancellationToken)
    {
        var report = await health.CheckHealthAsync(cancellationToken);
        var response = request.CreateResponse(report.Status == HealthStatus.Unhealthy ? HttpStatusCode.ServiceUnavailable : HttpStatusCode.OK);
        response.Headers.Add("Content-Type", "application/json");
        await response.WriteStringAsync(ServiceHealthCheck.ToJson(report), cancellationToken);
        return response;
    }
}
