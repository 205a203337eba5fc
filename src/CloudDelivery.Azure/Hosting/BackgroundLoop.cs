using Microsoft.Extensions.Logging;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// Runs the background loops of a host under supervision. A round that fails — whatever it throws, as
/// long as the host is not stopping — is logged and counted in the loop's <see cref="BackgroundLoopStatus"/>,
/// and the loop goes on; nothing a round meets (storage down, a bad record, a defect) ends the loop.
/// Should a loop end anyway while the host runs, it is marked dead, health fails, and
/// <c>onDeath</c> lets the host exit non-zero so that the platform restarts it.
/// </summary>
public static class BackgroundLoop
{
    /// <summary>
    /// Waits <paramref name="delayBeforeRound"/> (given the current time), runs <paramref name="round"/>,
    /// and again, until <paramref name="cancellationToken"/> is cancelled. A failed round is followed by the
    /// usual wait, but never a longer one than <paramref name="retryAfterFailure"/> when that is given.
    /// </summary>
    public static async Task RunPeriodicAsync(
        BackgroundLoopStatus status,
        Func<DateTimeOffset, TimeSpan> delayBeforeRound,
        Func<CancellationToken, Task> round,
        TimeProvider time,
        ILogger log,
        CancellationToken cancellationToken,
        TimeSpan? retryAfterFailure = null)
    {
        var failedLast = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            var wait = delayBeforeRound(time.GetUtcNow());
            if (failedLast && retryAfterFailure is { } retry && retry < wait)
            {
                wait = retry;
            }
            try
            {
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, time, cancellationToken);
                }
                await round(cancellationToken);
                status.Succeeded(time.GetUtcNow());
                failedLast = false;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                status.Failed(time.GetUtcNow(), e);
                failedLast = true;
                log.LogError(e, "Background loop {Loop} failed (failure {Count} in a row); it goes on", status.Name, status.ConsecutiveFailures);
            }
        }
    }

    /// <summary>
    /// A periodic loop under supervision, as the hosts run their loops: health's entry <paramref name="name"/>,
    /// <see cref="RunPeriodicAsync"/> inside <see cref="SuperviseAsync"/>.
    /// </summary>
    public static Task SupervisePeriodicAsync(
        ServiceHealth health,
        string name,
        Func<DateTimeOffset, TimeSpan> delayBeforeRound,
        Func<CancellationToken, Task> round,
        Action onDeath,
        TimeProvider time,
        ILogger log,
        CancellationToken cancellationToken,
        TimeSpan? retryAfterFailure = null)
    {
        var status = health.Loop(name);
        return SuperviseAsync(status, ct => RunPeriodicAsync(status, delayBeforeRound, round, time, log, ct, retryAfterFailure), onDeath, time, log, cancellationToken);
    }

    /// <summary>A delay for <see cref="RunPeriodicAsync"/>: the first round at once, then one per <paramref name="interval"/>.</summary>
    public static Func<DateTimeOffset, TimeSpan> AtOnceThenEvery(TimeSpan interval)
    {
        var first = true;
        return _ =>
        {
            if (!first)
            {
                return interval;
            }
            first = false;
            return TimeSpan.Zero;
        };
    }

    /// <summary>
    /// Runs <paramref name="loop"/> and watches it end: ending when <paramref name="cancellationToken"/> is
    /// cancelled is the normal stop; ending otherwise (returning or throwing) marks the loop dead, logs it
    /// as critical and calls <paramref name="onDeath"/>. Never throws.
    /// </summary>
    public static async Task SuperviseAsync(BackgroundLoopStatus status, Func<CancellationToken, Task> loop, Action onDeath, TimeProvider time, ILogger log, CancellationToken cancellationToken)
    {
        Exception? error = null;
        try
        {
            await loop(cancellationToken);
        }
        catch (Exception e)
        {
            error = e;
        }
        var stopping = cancellationToken.IsCancellationRequested;
        status.Ended(stopping, stopping ? null : error, time.GetUtcNow());
        if (!stopping)
        {
            log.LogCritical(error, "Background loop {Loop} ended while the host was running; health now fails and the host stops so that it is restarted", status.Name);
            onDeath();
        }
    }
}
