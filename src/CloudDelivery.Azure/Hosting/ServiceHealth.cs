namespace CloudDelivery.Azure.Hosting;

/// <summary>Where a background loop is in its life.</summary>
public enum BackgroundLoopState
{
    /// <summary>Registered; its first round has not finished yet.</summary>
    Starting,

    /// <summary>Going round; the last round may still have failed (see <see cref="BackgroundLoopStatus.ConsecutiveFailures"/>).</summary>
    Running,

    /// <summary>Ended because the host is stopping.</summary>
    Stopped,

    /// <summary>Ended while the host was not stopping: a defect. Health fails and the host exits non-zero.</summary>
    Dead,
}

/// <summary>
/// What one background loop (wake-up polling, sweeper, purge, TLSRPT reports, MTA-STS refresh, queue
/// sampling) last did. Written by the loop, read by health checks; safe across threads.
/// </summary>
public sealed class BackgroundLoopStatus
{
    private readonly object gate = new();

    internal BackgroundLoopStatus(string name) => Name = name;

    /// <summary>The loop's name, as health reports it ("wake-ups", "sweeper"…).</summary>
    public string Name { get; }

    public BackgroundLoopState State { get; private set; } = BackgroundLoopState.Starting;

    /// <summary>When a round last finished without an error.</summary>
    public DateTimeOffset? LastSuccess { get; private set; }

    /// <summary>When a round last failed.</summary>
    public DateTimeOffset? LastFailure { get; private set; }

    /// <summary>What the last failure was (exception type and message), for health's answer and the logs.</summary>
    public string? LastError { get; private set; }

    /// <summary>Failed rounds since the last good one.</summary>
    public int ConsecutiveFailures { get; private set; }

    internal void Succeeded(DateTimeOffset at)
    {
        lock (gate)
        {
            State = State is BackgroundLoopState.Starting ? BackgroundLoopState.Running : State;
            LastSuccess = at;
            ConsecutiveFailures = 0;
        }
    }

    internal void Failed(DateTimeOffset at, Exception error)
    {
        lock (gate)
        {
            State = State is BackgroundLoopState.Starting ? BackgroundLoopState.Running : State;
            LastFailure = at;
            LastError = $"{error.GetType().Name}: {error.Message}";
            ConsecutiveFailures++;
        }
    }

    internal void Ended(bool hostStopping, Exception? error, DateTimeOffset at)
    {
        lock (gate)
        {
            State = hostStopping ? BackgroundLoopState.Stopped : BackgroundLoopState.Dead;
            if (error is not null)
            {
                LastFailure = at;
                LastError = $"{error.GetType().Name}: {error.Message}";
            }
            else if (!hostStopping)
            {
                LastError = "the loop returned while the host was running";
            }
        }
    }
}

/// <summary>
/// The status of every background loop of this process, for health checks (<see cref="ServiceHealthCheck"/>,
/// which adds storage reachability from <see cref="Storage.StorageReachability"/>).
/// </summary>
public sealed class ServiceHealth(TimeProvider time)
{
    private readonly Dictionary<string, BackgroundLoopStatus> loops = new(StringComparer.Ordinal);
    private readonly object gate = new();

    public TimeProvider Time => time;

    /// <summary>What the resolver self-check last found (unchecked until it has run).</summary>
    public ResolverCheckStatus Resolver { get; } = new();

    /// <summary>The status of loop <paramref name="name"/>, registered on first use.</summary>
    public BackgroundLoopStatus Loop(string name)
    {
        lock (gate)
        {
            if (!loops.TryGetValue(name, out var status))
            {
                loops[name] = status = new BackgroundLoopStatus(name);
            }
            return status;
        }
    }

    /// <summary>Every registered loop, by name.</summary>
    public IReadOnlyList<BackgroundLoopStatus> Loops
    {
        get
        {
            lock (gate)
            {
                return loops.Values.OrderBy(l => l.Name, StringComparer.Ordinal).ToArray();
            }
        }
    }
}
