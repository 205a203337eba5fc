namespace CloudDelivery.Azure.WakeUps;

/// <summary>
/// In-process news of wake-ups this process enqueued, for a worker in the same process (<c>serve</c>): an
/// idle worker backs off its polling up to Worker:MaxPollingInterval, and without this a wake-up sent
/// right after it fell asleep would wait for the rest of that interval. Wake-ups from other processes
/// are still found by polling.
/// </summary>
public sealed class WakeUpSignal
{
    private readonly object gate = new();
    private TaskCompletionSource changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTimeOffset? earliest;

    /// <summary>A wake-up becomes visible at <paramref name="visibleAt"/>.</summary>
    public void Notify(DateTimeOffset visibleAt)
    {
        TaskCompletionSource toComplete;
        lock (gate)
        {
            if (earliest is { } known && known <= visibleAt)
            {
                return;
            }
            earliest = visibleAt;
            toComplete = changed;
            changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        toComplete.TrySetResult();
    }

    /// <summary>
    /// Waits up to <paramref name="idle"/>, or until a wake-up this process sent becomes visible, whichever
    /// comes first; returns at once for one that is visible already. Consumes what it reports.
    /// </summary>
    public async Task WaitAsync(TimeSpan idle, TimeProvider time, CancellationToken cancellationToken)
    {
        var until = time.GetUtcNow() + idle;
        while (true)
        {
            Task next;
            DateTimeOffset wakeAt;
            lock (gate)
            {
                if (earliest is { } visibleAt && visibleAt <= time.GetUtcNow())
                {
                    earliest = null;
                    return;
                }
                wakeAt = earliest is { } pending && pending < until ? pending : until;
                next = changed.Task;
            }
            var delay = wakeAt - time.GetUtcNow();
            if (delay <= TimeSpan.Zero)
            {
                return;
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var sleeping = Task.Delay(delay, time, stop.Token);
            if (await Task.WhenAny(sleeping, next) == next)
            {
                await stop.CancelAsync();
                continue;
            }
            await sleeping; // throws when cancelled
            if (wakeAt >= until)
            {
                return;
            }
        }
    }
}
