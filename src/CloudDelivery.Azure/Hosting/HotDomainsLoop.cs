using CloudDelivery.Azure.Queue;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// Reads the hot-domain set (see <see cref="HotDomains"/>) at start-up and then every
/// <see cref="OutboundQueueOptions.HotSetRefresh"/>, supervised, in both hosts: <c>serve</c> through
/// <see cref="CloudDeliveryLoops"/>, the Functions worker as <see cref="HotDomainsService"/>. Not run when
/// automatic sharding is off (pins need no reading).
/// </summary>
public static class HotDomainsLoop
{
    public static Task RunAsync(HotDomains hot, TimeSpan interval, ServiceHealth health, Action onDeath, TimeProvider time, ILogger log, CancellationToken cancellationToken) =>
        BackgroundLoop.SupervisePeriodicAsync(health, HotDomains.LoopName, BackgroundLoop.AtOnceThenEvery(interval), hot.RefreshAsync, onDeath, time, log, cancellationToken, retryAfterFailure: interval);
}

/// <summary>The hot-domain set's loop in the Functions worker (which has no <see cref="CloudDeliveryLoops"/>): supervised while the host runs.</summary>
public sealed class HotDomainsService(OutboundQueue queue, ServiceHealth health, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<HotDomainsService>? logger = null) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => queue.HotDomains.AutomaticSharding
        ? HotDomainsLoop.RunAsync(queue.HotDomains, queue.Options.HotSetRefresh, health, lifetime.StopApplication, time, (ILogger?)logger ?? NullLogger.Instance, stoppingToken)
        : Task.CompletedTask;
}
