using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Dns;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// What the last resolver self-check found, for health (<see cref="ServiceHealthCheck"/>). Written by
/// <see cref="ResolverSelfCheckLoop"/>, read by health checks; safe across threads.
/// </summary>
public sealed class ResolverCheckStatus
{
    private readonly object gate = new();
    private ResolverCheckSnapshot current = new(ResolverValidation.Unchecked, null, null, "no check has finished yet");

    public ResolverCheckSnapshot Current
    {
        get
        {
            lock (gate)
            {
                return current;
            }
        }
    }

    /// <summary>The loop starts checking <paramref name="resolver"/>; the state stays unchecked until a check finishes.</summary>
    public void Starting(string resolver) => Set(new(ResolverValidation.Unchecked, resolver, null, "no check has finished yet"));

    public void Disabled(string resolver) => Set(new(ResolverValidation.Disabled, resolver, null, "the self-check is switched off (CloudDelivery:Delivery:ResolverCheck:Enabled)"));

    public void Record(ResolverCheckResult result) => Set(new(result.State, result.Resolver, result.CheckedAt, result.Detail));

    private void Set(ResolverCheckSnapshot snapshot)
    {
        lock (gate)
        {
            current = snapshot;
        }
    }
}

/// <summary>The resolver's state as health reports it.</summary>
/// <param name="State">Unchecked, disabled, or the last check's result.</param>
/// <param name="Resolver">Its address or "system"; null before the self-check loop has started.</param>
/// <param name="CheckedAt">When the last check finished; null before the first.</param>
/// <param name="Detail">What the names got, in words, or why there is no result.</param>
public sealed record ResolverCheckSnapshot(ResolverValidation State, string? Resolver, DateTimeOffset? CheckedAt, string Detail)
{
    /// <summary>Not validating or not answering: mail still flows (opportunistic TLS), but without DANE, so degraded.</summary>
    public bool Degrades => State is ResolverValidation.NotValidating or ResolverValidation.Unreachable;
}

/// <summary>
/// The resolver self-check of both hosts: a check at start-up and one per
/// <see cref="ResolverCheckOptions.Interval"/>, supervised as every background loop is, each result logged
/// (<see cref="ResolverSelfCheckLog"/>) and kept for health. <c>serve</c> runs it among
/// <see cref="CloudDeliveryLoops"/>, the Functions worker as <see cref="ResolverSelfCheckService"/>.
/// </summary>
public sealed class ResolverSelfCheckLoop(ResolverSelfCheck check, ServiceHealth health, TimeProvider time, ILogger<ResolverSelfCheckLoop>? logger = null)
{
    /// <summary>The loop's name in health's "loops".</summary>
    public const string LoopName = "resolver-check";

    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>
    /// Runs until <paramref name="cancellationToken"/> is cancelled; when the check is disabled, records
    /// that and returns at once (no loop, nothing supervised). <paramref name="onDeath"/> as for every loop.
    /// </summary>
    public Task RunAsync(Action onDeath, CancellationToken cancellationToken)
    {
        if (!check.Options.Enabled)
        {
            health.Resolver.Disabled(check.ResolverName);
            return Task.CompletedTask;
        }
        health.Resolver.Starting(check.ResolverName);
        return BackgroundLoop.SupervisePeriodicAsync(health, LoopName, BackgroundLoop.AtOnceThenEvery(check.Options.Interval), CheckOnceAsync, onDeath, time, log, cancellationToken);
    }

    /// <summary>One check: counted (by the check), logged, and kept for health.</summary>
    public async Task<ResolverCheckResult> CheckOnceAsync(CancellationToken cancellationToken)
    {
        var result = await check.CheckAsync(cancellationToken);
        health.Resolver.Record(result);
        ResolverSelfCheckLog.ResolverSelfCheck(log, result.State == ResolverValidation.Validating ? LogLevel.Information : LogLevel.Warning, result.Resolver, result.State.Name(), result.Detail);
        return result;
    }
}

/// <summary>The resolver self-check in the Functions worker (which has no <see cref="CloudDeliveryLoops"/>): a hosted service, not a timer.</summary>
public sealed class ResolverSelfCheckService(ResolverSelfCheckLoop loop, IHostApplicationLifetime lifetime) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => loop.RunAsync(lifetime.StopApplication, stoppingToken);
}
