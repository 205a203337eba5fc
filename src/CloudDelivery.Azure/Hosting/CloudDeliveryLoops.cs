using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.MtaSts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// The background loops of a host without Functions timers (<c>serve</c>), on the Functions timers'
/// schedules: wake-up polling, the sweeper, the purge, the TLSRPT report run, the MTA-STS refresh, the resolver self-check, the hot-domain set, the TLSRPT results flush and,
/// when telemetry is exported, the queue sampler. Each runs supervised (see <see cref="BackgroundLoop"/>)
/// and reports to <see cref="ServiceHealth"/>.
/// </summary>
public sealed class CloudDeliveryLoops(
    WakeUpWorker worker,
    QueuePurger purger,
    TlsRptReportSender reports,
    MtaStsPolicyRefresher refresher,
    ServiceHealth health,
    Suppression.SuppressionList suppressions,
    TimeProvider time,
    ILoggerFactory? loggers = null)
{
    private readonly ILogger log = loggers?.CreateLogger<CloudDeliveryLoops>() ?? NullLogger<CloudDeliveryLoops>.Instance;

    /// <summary>The event dispatcher and its sweep, run when it has sinks.</summary>
    public EventDispatcher? Events { get; init; }

    /// <summary>Throttle state shared with other instances, and how often (see Shaping/SharedThrottleState).</summary>
    public (Shaping.SharedThrottleState State, Shaping.SharedShapingOptions Options)? SharedShaping { get; init; }

    /// <summary>The resolver self-check (see <see cref="ResolverSelfCheckLoop"/>).</summary>
    public ResolverSelfCheckLoop? ResolverCheck { get; init; }

    /// <summary>The TLSRPT results delivery runs keep in memory, written by <see cref="TlsRptFlushLoop"/>.</summary>
    public TlsRptResultStore? TlsResults { get; init; }

    /// <summary>The hot set and how often it is read (see <see cref="Queue.HotDomains"/>).</summary>
    public (HotDomains Domains, TimeSpan Interval)? HotDomains { get; init; }

    /// <summary>
    /// Runs every loop until <paramref name="cancellationToken"/> is cancelled. <paramref name="onDeath"/> is
    /// called if a loop ends while the host runs (a defect): the host should stop and exit non-zero.
    /// </summary>
    public Task RunAsync(QueueSampler? sampler, Action onDeath, CancellationToken cancellationToken)
    {
        var loops = new List<Task>
        {
            Supervise(WakeUpWorker.PollingLoopName, worker.RunAsync),
            Periodic(WakeUpWorker.SweeperLoopName, _ => worker.Options.SweepInterval, async ct =>
            {
                var swept = await worker.SweepAsync(ct);
                if (swept > 0)
                {
                    log.LogInformation("Sweeper woke {Count} domains with stranded records", swept);
                }
            }, retryAfterFailure: TimeSpan.FromMinutes(1)),
            Periodic("purge", _ => worker.Options.PurgeInterval, purger.PurgeAsync, retryAfterFailure: TimeSpan.FromMinutes(15)),
            Periodic("tlsrpt-reports", now => TlsRptReportSender.NextRun(now) - now, reports.RunAsync),
            RefreshLoop(),
            // Keeps the suppression snapshot fresh so that no submission waits for a refresh; a failed round keeps the last one.
            Periodic(Suppression.SuppressionList.RefreshLoopName, _ => suppressions.Options.RefreshInterval, suppressions.RefreshAsync),
        };
        if (Events is { HasSinks: true } events)
        {
            loops.Add(Supervise(EventDispatcher.LoopName, events.RunAsync));
            loops.Add(Periodic(EventDispatcher.SweepLoopName, _ => events.Options.SweepInterval, events.SweepAsync));
        }
        if (SharedShaping is var (shared, sharing))
        {
            loops.Add(Periodic(Shaping.SharedThrottleState.LoopName, _ => sharing.SharedStateInterval, shared.RunRoundAsync));
        }
        if (HotDomains is var (hot, interval) && hot.AutomaticSharding)
        {
            loops.Add(HotDomainsLoop.RunAsync(hot, interval, health, onDeath, time, log, cancellationToken));
        }
        if (TlsResults is { } tlsResults)
        {
            loops.Add(TlsRptFlushLoop.RunAsync(tlsResults, health, onDeath, time, log, cancellationToken));
        }
        if (ResolverCheck is { } resolverCheck)
        {
            loops.Add(resolverCheck.RunAsync(onDeath, cancellationToken));
        }
        if (sampler is not null)
        {
            loops.Add(Periodic("queue-sampler", BackgroundLoop.AtOnceThenEvery(sampler.Interval), sampler.SampleAsync));
        }
        return Task.WhenAll(loops);

        Task Supervise(string name, Func<CancellationToken, Task> loop) =>
            BackgroundLoop.SuperviseAsync(health.Loop(name), loop, onDeath, time, log, cancellationToken);

        Task Periodic(string name, Func<DateTimeOffset, TimeSpan> delay, Func<CancellationToken, Task> round, TimeSpan? retryAfterFailure = null) =>
            BackgroundLoop.SupervisePeriodicAsync(health, name, delay, round, onDeath, time, log, cancellationToken, retryAfterFailure);

        Task RefreshLoop()
        {
            // A short wait first keeps the run out of the host's start-up; then one run per interval.
            var next = time.GetUtcNow() + TimeSpan.FromMinutes(1);
            return Periodic("mtasts-refresh", now => next - now, async ct =>
            {
                next = time.GetUtcNow() + refresher.Options.Interval;
                await refresher.RefreshAsync(refresher.Options.Interval, ct);
            });
        }
    }
}
