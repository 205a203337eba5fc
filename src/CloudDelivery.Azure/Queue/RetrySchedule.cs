namespace CloudDelivery.Azure.Queue;

/// <summary>
/// When to try again, as mox's queue does: attempts right away, then after 7.5 minutes, doubling each time
/// (15 m, 30 m, 1 h, 2 h, 4 h, 8 h...). After the fifth failed attempt the sender gets a "delayed" DSN;
/// after the eighth we give up with a "failed" DSN (about 16 hours in all).
/// </summary>
public sealed class RetrySchedule
{
    public TimeSpan FirstInterval { get; init; } = TimeSpan.FromSeconds(7 * 60 + 30);

    public int MaxAttempts { get; init; } = 8;

    /// <summary>The failed attempt after which a delay DSN is sent.</summary>
    public int DelayDsnAfterAttempts { get; init; } = 5;

    /// <summary>Time to wait after <paramref name="attempts"/> failed attempts.</summary>
    public TimeSpan Backoff(int attempts) => FirstInterval * Math.Pow(2, Math.Max(0, attempts - 1));

    /// <summary>Until when a message submitted at <paramref name="submitted"/> is retried, for DSNs.</summary>
    public DateTimeOffset RetryUntil(DateTimeOffset submitted) =>
        submitted + Enumerable.Range(1, MaxAttempts - 1).Aggregate(TimeSpan.Zero, (sum, attempt) => sum + Backoff(attempt));
}
