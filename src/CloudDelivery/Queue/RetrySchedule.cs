namespace CloudDelivery.Queue;

/// <summary>
/// When to try again, as mox's queue does: attempts right away, then after 7.5 minutes, doubling each time
/// (15 m, 30 m, 1 h, 2 h, 4 h, 8 h...). After the fifth failed attempt the sender gets a "delayed" DSN;
/// after the eighth we give up with a "failed" DSN (about 16 hours in all).
/// </summary>
/// <remarks>
/// Like mox (queue/queue.go, where the next attempt is computed), the first interval is moved by a whole
/// number of seconds drawn from [-<see cref="JitterSeconds"/>, +<see cref="JitterSeconds"/>), and the
/// doubling applies to the moved interval, so the spread grows with the delay. Recipients that failed
/// together then do not all come back in the same second, and neither do the wake-ups of many domains
/// after one outage.
/// </remarks>
public sealed class RetrySchedule
{
    public TimeSpan FirstInterval { get; init; } = TimeSpan.FromSeconds(7 * 60 + 30);

    public int MaxAttempts { get; init; } = 8;

    /// <summary>The failed attempt after which a delay DSN is sent.</summary>
    public int DelayDsnAfterAttempts { get; init; } = 5;

    /// <summary>How far, in whole seconds, the first interval may move either way; 0 for an exact schedule.</summary>
    public int JitterSeconds { get; init; } = 5;

    /// <summary>Where the jitter comes from; tests pass a seeded or a fixed source.</summary>
    public Random JitterSource { get; init; } = Random.Shared;

    /// <summary>Time to wait after <paramref name="attempts"/> failed attempts, without jitter.</summary>
    public TimeSpan NominalDelay(int attempts) => FirstInterval * Math.Pow(2, Math.Max(0, attempts - 1));

    /// <summary>Time to wait after <paramref name="attempts"/> failed attempts: the nominal delay with its jitter.</summary>
    public TimeSpan DelayAfter(int attempts)
    {
        var jitter = JitterSeconds <= 0 ? 0 : JitterSource.Next(-JitterSeconds, JitterSeconds);
        return (FirstInterval + TimeSpan.FromSeconds(jitter)) * Math.Pow(2, Math.Max(0, attempts - 1));
    }

    /// <summary>Until when a message submitted at <paramref name="submitted"/> is retried, for DSNs (nominal: the jitter is not known in advance).</summary>
    public DateTimeOffset RetryUntil(DateTimeOffset submitted) =>
        submitted + Enumerable.Range(1, MaxAttempts - 1).Aggregate(TimeSpan.Zero, (sum, attempt) => sum + NominalDelay(attempt));
}
