using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using CloudDelivery.Telemetry;

namespace CloudDelivery.Shaping;

/// <summary>Why traffic shaping held a message back.</summary>
public enum ShapingHoldReason
{
    /// <summary>The budget's messages per minute or per hour are spent for now.</summary>
    Rate,

    /// <summary>Every connection the budget allows is in use.</summary>
    Connections,

    /// <summary>The receiver throttled us and the budget is paused.</summary>
    Paused,
}

/// <summary>A message (and the rest of its run) held back: why, and how long until it is worth trying again.</summary>
public readonly record struct ShapingHold(ShapingHoldReason Reason, TimeSpan RetryAfter)
{
    /// <summary>The tag value of the reason in metrics: rate, connections, paused.</summary>
    public string ReasonName => Reason switch
    {
        ShapingHoldReason.Rate => "rate",
        ShapingHoldReason.Connections => "connections",
        _ => "paused",
    };
}

/// <summary>One budget as it stands: its configured limits and what throttling made of them.</summary>
/// <param name="Key">The budget's name: a rule's name, or the recipient domain under the default rule.</param>
/// <param name="Limits">The configured limits.</param>
/// <param name="CurrentPerMinute">The effective messages per minute; below the configured rate after throttling; null when unlimited.</param>
/// <param name="PausedUntil">Until when nothing is sent, after a throttling reply; null when not paused.</param>
/// <param name="ConsecutiveThrottles">Throttling replies since the rate last recovered; the pause doubles with each.</param>
/// <param name="ConnectionsInUse">Connections open under this budget now.</param>
public sealed record ShapingKeySnapshot(string Key, ShapingLimits Limits, int? CurrentPerMinute, DateTimeOffset? PausedUntil, int ConsecutiveThrottles, int ConnectionsInUse);

/// <summary>A budget was throttled by a receiver: for how long it pauses and at what rate it resumes.</summary>
public sealed record ShapingThrottled(string Key, TimeSpan Pause, DateTimeOffset PausedUntil, int CurrentPerMinute, int ConsecutiveThrottles);

/// <summary>
/// Traffic shaping for one engine (so one process): per budget — a rule matched by recipient domain or MX
/// host suffix, or the recipient domain itself under the default rule — a <see cref="ConcurrencyLimiter"/>
/// for connections and token buckets for messages per minute and per hour, shared by every concurrent
/// delivery run of the process. A receiver's throttling reply halves the budget's rate (down to a floor)
/// and pauses it, for longer with each consecutive throttle up to a cap; each message accepted afterwards
/// wins part of the rate back, and once it is whole the pause resets. Nothing here waits long: a run that
/// gets no permit defers its messages, so one slow destination never holds a worker other domains need.
/// </summary>
/// <remarks>
/// The buckets are replenished from the engine's <see cref="TimeProvider"/> (AutoReplenishment off; the
/// permits due for the periods elapsed on that clock are put back), so the budgets follow the same clock as
/// the rest of the engine and tests can drive them.
/// </remarks>
public sealed class TrafficShaper : IDisposable
{
    /// <summary>Idle budgets kept at most; beyond it, budgets unused for an hour are dropped (they start afresh, full).</summary>
    private const int MaxIdleBudgets = 10_000;

    private readonly ConcurrentDictionary<string, ShapingBudget> budgets = new(StringComparer.Ordinal);
    private readonly TimeProvider time;
    private readonly DeliveryMetrics? metrics;

    public TrafficShaper(TrafficShapingRules rules, TimeProvider? time = null, DeliveryMetrics? metrics = null)
    {
        Rules = rules;
        this.time = time ?? TimeProvider.System;
        this.metrics = metrics;
    }

    public TrafficShapingRules Rules { get; }

    /// <summary>Raised (on the delivering thread, so keep it short) when a receiver's reply throttles a budget.</summary>
    public event Action<ShapingThrottled>? Throttled;

    /// <summary>
    /// The budget a delivery to <paramref name="recipientDomain"/> through <paramref name="mxHost"/> spends:
    /// a recipient-domain rule first, then the MX host's suffix, else the domain's own under the default rule.
    /// </summary>
    public ShapingBudget BudgetFor(string recipientDomain, string? mxHost)
    {
        var domain = recipientDomain.TrimEnd('.').ToLowerInvariant();
        var rule = Rules.MatchRecipientDomain(domain) ?? (mxHost is null ? null : Rules.MatchMxHost(mxHost));
        var key = rule?.Name ?? domain;
        if (budgets.Count > MaxIdleBudgets)
        {
            DropIdle();
        }
        return budgets.GetOrAdd(key, static (k, state) => new ShapingBudget(k, state.Limits, state.Shaper), (Limits: rule?.Limits ?? Rules.DefaultLimits, Shaper: this));
    }

    /// <summary>The names of the budgets in use since start (or since they were last idle for an hour).</summary>
    public IReadOnlyList<string> Keys => budgets.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>True, with the end of the pause, when budget <paramref name="key"/> is paused after a throttling reply.</summary>
    public bool IsPaused(string key, out DateTimeOffset until)
    {
        until = default;
        if (budgets.TryGetValue(key, out var budget) && budget.PausedUntil is { } end)
        {
            until = end;
            return true;
        }
        return false;
    }

    /// <summary>
    /// Applies the pause and lowered rate another instance saw for budget <paramref name="key"/> (a rule's name,
    /// or a domain under the default rule) without raising <see cref="Throttled"/>: that instance shared it already.
    /// </summary>
    public void ApplyShared(string key, DateTimeOffset pausedUntil, int? perMinute)
    {
        var rule = Rules.Rules.FirstOrDefault(r => string.Equals(r.Name, key, StringComparison.Ordinal));
        budgets.GetOrAdd(key, static (k, state) => new ShapingBudget(k, state.Limits, state.Shaper), (Limits: rule?.Limits ?? Rules.DefaultLimits, Shaper: this))
            .ApplyShared(pausedUntil, perMinute);
    }

    /// <summary>Every budget as it stands, by name.</summary>
    public IReadOnlyList<ShapingKeySnapshot> Snapshot() => budgets.Values.Select(b => b.Snapshot()).OrderBy(s => s.Key, StringComparer.Ordinal).ToArray();

    public void Dispose()
    {
        foreach (var budget in budgets.Values)
        {
            budget.Dispose();
        }
        budgets.Clear();
    }

    internal TimeProvider Time => time;

    internal void OnThrottled(ShapingThrottled throttled)
    {
        metrics?.ShapingThrottled.Add(1, new KeyValuePair<string, object?>("key", throttled.Key));
        Throttled?.Invoke(throttled);
    }

    internal void OnDeferred(string key, ShapingHold hold, int recipients) =>
        metrics?.ShapingDeferred.Add(recipients, new KeyValuePair<string, object?>("key", key), new KeyValuePair<string, object?>("reason", hold.ReasonName));

    private void DropIdle()
    {
        var cutoff = time.GetUtcNow() - TimeSpan.FromHours(1);
        foreach (var (key, budget) in budgets)
        {
            if (budget.IsIdleSince(cutoff) && budgets.TryRemove(key, out var removed))
            {
                removed.Dispose();
            }
        }
    }
}

/// <summary>
/// One budget of <see cref="TrafficShaper"/>: connection leases, message permits, and the throttling state.
/// Thread-safe; every delivery run of the process using the same key shares it.
/// </summary>
public sealed class ShapingBudget : IDisposable
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private readonly Lock gate = new();
    private readonly TrafficShaper shaper;
    private readonly ConcurrencyLimiter? connections;
    private readonly PermitBucket? perHour;
    private PermitBucket? perMinute;
    private int? currentPerMinute;
    private int? ceilingPerMinute;
    private DateTimeOffset pausedUntil;
    private int consecutiveThrottles;
    private double recoveryCredit;
    private DateTimeOffset windowStart;
    private int sentInWindow;
    private int sentInPreviousWindow;
    private DateTimeOffset lastUsed;

    internal ShapingBudget(string key, ShapingLimits limits, TrafficShaper shaper)
    {
        Key = key;
        Limits = limits;
        this.shaper = shaper;
        var now = Now;
        lastUsed = windowStart = now;
        if (limits.Connections is { } connectionLimit)
        {
            connections = new ConcurrencyLimiter(new ConcurrencyLimiterOptions { PermitLimit = connectionLimit, QueueLimit = 0 });
        }
        if (limits.MessagesPerMinute is { } perMinuteLimit)
        {
            perMinute = new PermitBucket(perMinuteLimit, Minute, now);
            currentPerMinute = ceilingPerMinute = perMinuteLimit;
        }
        if (limits.MessagesPerHour is { } perHourLimit)
        {
            perHour = new PermitBucket(perHourLimit, Hour, now);
        }
    }

    public string Key { get; }

    public ShapingLimits Limits { get; }

    private ThrottleSettings Settings => shaper.Rules.Throttling;

    private DateTimeOffset Now => shaper.Time.GetUtcNow();

    /// <summary>The end of the pause a throttling reply started, while it lasts.</summary>
    public DateTimeOffset? PausedUntil
    {
        get
        {
            lock (gate)
            {
                return pausedUntil > Now ? pausedUntil : null;
            }
        }
    }

    /// <summary>Held for the whole run when the budget is paused: nothing is dialled.</summary>
    public ShapingHold? Paused()
    {
        var now = Now;
        lock (gate)
        {
            return pausedUntil > now ? new ShapingHold(ShapingHoldReason.Paused, pausedUntil - now) : null;
        }
    }

    /// <summary>
    /// A lease on one connection, to be disposed when the connection is closed; null when every connection the
    /// budget allows is in use. Unlimited budgets lease without counting.
    /// </summary>
    public IDisposable? TryOpenConnection()
    {
        lock (gate)
        {
            lastUsed = Now;
        }
        if (connections is null)
        {
            return NoLease.Instance;
        }
        var lease = connections.AttemptAcquire(1);
        if (lease.IsAcquired)
        {
            return lease;
        }
        lease.Dispose();
        return null;
    }

    /// <summary>What is held back when no connection is free: a short while, others finish theirs.</summary>
    public ShapingHold ConnectionsBusy => new(ShapingHoldReason.Connections, Settings.ConnectionRetryAfter);

    /// <summary>
    /// A permit to send one message, taken before its MAIL FROM: null when granted, else why not and for how
    /// long. Waits for the next permit only when it is due within <see cref="ThrottleSettings.MaxWaitInRun"/>.
    /// </summary>
    public async ValueTask<ShapingHold?> AcquireMessageAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var hold = TryTakeMessage();
            if (hold is not { Reason: ShapingHoldReason.Rate } rate || attempt > 0 || rate.RetryAfter > Settings.MaxWaitInRun)
            {
                return hold;
            }
            await Task.Delay(rate.RetryAfter, shaper.Time, cancellationToken);
        }
    }

    /// <summary>
    /// How long the message <paramref name="position"/> places behind a held one should wait: one permit
    /// period of the current rate per place, so deferred messages come back spread over the budget instead of
    /// all at once.
    /// </summary>
    public TimeSpan SpreadRetryAfter(ShapingHold hold, int position)
    {
        if (hold.Reason != ShapingHoldReason.Rate)
        {
            return hold.RetryAfter;
        }
        lock (gate)
        {
            var perMinuteNow = currentPerMinute ?? Limits.MessagesPerHour / 60 ?? 60;
            var period = TimeSpan.FromTicks(Minute.Ticks / Math.Max(1, perMinuteNow));
            return hold.RetryAfter + (period * position);
        }
    }

    /// <summary>
    /// A receiver answered with a throttling reply: halve the rate (not below the floor), pause for the
    /// initial pause doubled per consecutive throttle (capped), and return how long the pause lasts. Replies
    /// from sessions that were already under way when the pause began do not count again.
    /// </summary>
    public TimeSpan NoteThrottled()
    {
        ShapingThrottled? raised = null;
        TimeSpan remaining;
        lock (gate)
        {
            var now = Now;
            lastUsed = now;
            if (pausedUntil > now)
            {
                return pausedUntil - now;
            }
            consecutiveThrottles++;
            var pause = TimeSpan.FromTicks(Math.Min(Settings.MaxPause.Ticks, Settings.InitialPause.Ticks * (1L << Math.Min(consecutiveThrottles - 1, 20))));
            pausedUntil = now + pause;
            RollWindow(now);
            // A budget without a configured rate is slowed from what it was sending when throttled.
            ceilingPerMinute ??= Math.Max(2 * Settings.MinimumPerMinute, Math.Max(sentInWindow, sentInPreviousWindow));
            var halved = Math.Max(Settings.MinimumPerMinute, (currentPerMinute ?? ceilingPerMinute.Value) / 2);
            SetRate(halved, now, startEmpty: perMinute is null);
            recoveryCredit = 0;
            remaining = pause;
            raised = new ShapingThrottled(Key, pause, pausedUntil, halved, consecutiveThrottles);
        }
        shaper.OnThrottled(raised);
        return remaining;
    }

    /// <summary>A message was accepted without throttling: win back part of the rate; once whole, the backoff resets.</summary>
    public void NoteClean()
    {
        lock (gate)
        {
            lastUsed = Now;
            if (consecutiveThrottles == 0 || currentPerMinute is not { } current || ceilingPerMinute is not { } ceiling)
            {
                return;
            }
            recoveryCredit += Settings.RecoveryPerCleanMessage * ceiling;
            var step = (int)Math.Floor(recoveryCredit);
            if (step < 1)
            {
                return;
            }
            recoveryCredit -= step;
            var next = current + step;
            if (next < ceiling)
            {
                SetRate(next, Now, startEmpty: false);
                return;
            }
            consecutiveThrottles = 0;
            recoveryCredit = 0;
            if (Limits.MessagesPerMinute is null)
            {
                perMinute?.Dispose();
                perMinute = null;
                currentPerMinute = ceilingPerMinute = null;
            }
            else
            {
                SetRate(ceiling, Now, startEmpty: false);
            }
        }
    }

    /// <summary>Another instance's throttle: paused at least until <paramref name="until"/>, no faster than <paramref name="perMinuteRate"/>.</summary>
    internal void ApplyShared(DateTimeOffset until, int? perMinuteRate)
    {
        lock (gate)
        {
            var now = Now;
            lastUsed = now;
            pausedUntil = until > pausedUntil ? until : pausedUntil;
            if (perMinuteRate is { } rate && rate < (currentPerMinute ?? int.MaxValue))
            {
                // As a throttle seen here: clean replies win the rate back towards the ceiling.
                consecutiveThrottles = Math.Max(1, consecutiveThrottles);
                ceilingPerMinute ??= Math.Max(2 * rate, 2 * Settings.MinimumPerMinute);
                SetRate(Math.Max(Settings.MinimumPerMinute, rate), now, startEmpty: perMinute is null);
                recoveryCredit = 0;
            }
        }
    }

    public ShapingKeySnapshot Snapshot()
    {
        lock (gate)
        {
            var inUse = connections is null ? 0 : Limits.Connections!.Value - (int)(connections.GetStatistics()?.CurrentAvailablePermits ?? Limits.Connections!.Value);
            return new ShapingKeySnapshot(Key, Limits, currentPerMinute, pausedUntil > Now ? pausedUntil : null, consecutiveThrottles, inUse);
        }
    }

    internal bool IsIdleSince(DateTimeOffset cutoff)
    {
        lock (gate)
        {
            return lastUsed < cutoff && pausedUntil < cutoff && consecutiveThrottles == 0
                && (connections is null || connections.GetStatistics()?.CurrentAvailablePermits == Limits.Connections);
        }
    }

    internal void NoteDeferred(ShapingHold hold, int recipients) => shaper.OnDeferred(Key, hold, recipients);

    public void Dispose()
    {
        connections?.Dispose();
        perMinute?.Dispose();
        perHour?.Dispose();
    }

    private ShapingHold? TryTakeMessage()
    {
        lock (gate)
        {
            var now = Now;
            lastUsed = now;
            if (pausedUntil > now)
            {
                return new ShapingHold(ShapingHoldReason.Paused, pausedUntil - now);
            }
            // Both buckets must have a permit, or neither is spent.
            var minuteWait = perMinute?.WaitFor(now) ?? TimeSpan.Zero;
            var hourWait = perHour?.WaitFor(now) ?? TimeSpan.Zero;
            if (minuteWait > TimeSpan.Zero || hourWait > TimeSpan.Zero)
            {
                return new ShapingHold(ShapingHoldReason.Rate, minuteWait > hourWait ? minuteWait : hourWait);
            }
            perMinute?.Take();
            perHour?.Take();
            RollWindow(now);
            sentInWindow++;
            return null;
        }
    }

    private void SetRate(int perMinuteRate, DateTimeOffset now, bool startEmpty)
    {
        currentPerMinute = perMinuteRate;
        var resized = perMinute is null ? new PermitBucket(perMinuteRate, Minute, now, startEmpty) : perMinute.Resized(perMinuteRate, now);
        if (!ReferenceEquals(resized, perMinute))
        {
            perMinute?.Dispose();
            perMinute = resized;
        }
    }

    /// <summary>Messages sent this minute and the last, what a budget without a configured rate is slowed from.</summary>
    private void RollWindow(DateTimeOffset now)
    {
        var elapsed = now - windowStart;
        if (elapsed < Minute)
        {
            return;
        }
        sentInPreviousWindow = elapsed < 2 * Minute ? sentInWindow : 0;
        sentInWindow = 0;
        windowStart = now;
    }

    private sealed class NoLease : IDisposable
    {
        public static NoLease Instance { get; } = new();

        public void Dispose()
        {
        }
    }
}

/// <summary>
/// A <see cref="TokenBucketRateLimiter"/> of <c>limit</c> permits per window, one permit per period
/// (window / limit), replenished from a <see cref="TimeProvider"/>'s time rather than the limiter's timer.
/// </summary>
internal sealed class PermitBucket : IDisposable
{
    private TokenBucketRateLimiter limiter;
    private readonly TimeSpan window;
    private readonly TimeSpan period;
    private readonly int limit;
    private DateTimeOffset lastReplenished;

    public PermitBucket(int limit, TimeSpan window, DateTimeOffset now, bool startEmpty = false)
    {
        this.limit = limit;
        this.window = window;
        period = TimeSpan.FromTicks(Math.Max(1, window.Ticks / limit));
        lastReplenished = now;
        limiter = NewLimiter();
        if (startEmpty)
        {
            limiter.AttemptAcquire(limit).Dispose();
        }
    }

    private TokenBucketRateLimiter NewLimiter() => new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = limit,
        TokensPerPeriod = 1,
        ReplenishmentPeriod = period,
        AutoReplenishment = false,
        QueueLimit = 0,
    });

    private int Available => (int)(limiter.GetStatistics()?.CurrentAvailablePermits ?? 0);

    /// <summary>Zero when a permit is available now, else the time until the next one.</summary>
    public TimeSpan WaitFor(DateTimeOffset now)
    {
        Replenish(now);
        return Available > 0 ? TimeSpan.Zero : period - (now - lastReplenished);
    }

    public void Take()
    {
        using var lease = limiter.AttemptAcquire(1);
    }

    /// <summary>The same bucket at a new rate, keeping what permits it has (up to the new limit).</summary>
    public PermitBucket Resized(int newLimit, DateTimeOffset now)
    {
        if (newLimit == limit)
        {
            return this;
        }
        Replenish(now);
        var keep = Math.Min(Available, newLimit);
        var resized = new PermitBucket(newLimit, window, now);
        if (newLimit - keep > 0)
        {
            resized.limiter.AttemptAcquire(newLimit - keep).Dispose();
        }
        return resized;
    }

    /// <summary>
    /// One permit per whole period elapsed on the clock, up to a full bucket. The limiter's own TryReplenish
    /// measures its period on the system stopwatch, so the bucket is refilled by replacing the limiter with
    /// one holding the permits due (a new limiter starts full and is drained to that count).
    /// </summary>
    private void Replenish(DateTimeOffset now)
    {
        var periods = (now - lastReplenished).Ticks / period.Ticks;
        if (periods <= 0)
        {
            return;
        }
        var available = Available;
        var due = (int)Math.Min(limit, available + periods);
        lastReplenished = due == limit ? now : lastReplenished + (period * periods);
        if (due == available)
        {
            return;
        }
        var refilled = NewLimiter();
        if (limit - due > 0)
        {
            refilled.AttemptAcquire(limit - due).Dispose();
        }
        limiter.Dispose();
        limiter = refilled;
    }

    public void Dispose() => limiter.Dispose();
}
