using CloudDelivery.Shaping;
using Microsoft.Extensions.Time.Testing;

namespace CloudDelivery.Tests.Shaping;

/// <summary>
/// The budgets on their own, on a fake clock: which destinations share one, how permits replenish, and how
/// a throttling reply slows and pauses a budget that then recovers.
/// </summary>
public sealed class TrafficShaperTests
{
    private static readonly TrafficShapingRules Rules = TrafficShapingRules.Default.WithOverrides("""
        {
          "throttling": { "initialPause": "00:01:00", "maxPause": "00:04:00", "minimumPerMinute": 1, "recoveryPerCleanMessage": 0.25, "maxWaitInRun": "00:00:00" },
          "rules": [ { "name": "slow", "domains": ["slow.example"], "messagesPerMinute": 4 } ]
        }
        """);

    [Fact]
    public void Domains_hosted_by_one_provider_share_its_budget_and_other_domains_have_their_own()
    {
        using var shaper = new TrafficShaper(Rules, new FakeTimeProvider());

        var first = shaper.BudgetFor("first.example", "aspmx.l.google.com");
        var second = shaper.BudgetFor("second.example", "alt1.aspmx.l.google.com");
        var third = shaper.BudgetFor("third.example", "mx.third.example");
        var fourth = shaper.BudgetFor("fourth.example", "mx.third.example");

        Assert.Same(first, second);
        Assert.Equal("google", first.Key);
        Assert.Equal("third.example", third.Key);
        Assert.NotSame(third, fourth);
        // A recipient-domain rule comes before the MX host's suffix.
        Assert.Equal("slow", shaper.BudgetFor("slow.example", "aspmx.l.google.com").Key);
        Assert.Equal(["fourth.example", "google", "slow", "third.example"], shaper.Keys);
    }

    [Fact]
    public async Task Messages_per_minute_are_permits_that_come_back_one_per_period_on_the_engines_clock()
    {
        var clock = new FakeTimeProvider();
        using var shaper = new TrafficShaper(Rules, clock);
        var budget = shaper.BudgetFor("slow.example", null);

        for (var i = 0; i < 4; i++)
        {
            Assert.Null(await budget.AcquireMessageAsync(CancellationToken.None));
        }
        var held = await budget.AcquireMessageAsync(CancellationToken.None);

        Assert.Equal(new ShapingHold(ShapingHoldReason.Rate, TimeSpan.FromSeconds(15)), held);
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(TimeSpan.FromSeconds(5), (await budget.AcquireMessageAsync(CancellationToken.None))?.RetryAfter);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Null(await budget.AcquireMessageAsync(CancellationToken.None));
        Assert.NotNull(await budget.AcquireMessageAsync(CancellationToken.None));
    }

    [Fact]
    public void Connections_are_leases_and_a_budget_gives_no_more_than_its_limit()
    {
        using var shaper = new TrafficShaper(TrafficShapingRules.Parse("""{ "rules": [ { "name": "two", "domains": ["two.example"], "connections": 2 } ] }"""), new FakeTimeProvider());
        var budget = shaper.BudgetFor("two.example", null);

        using var first = budget.TryOpenConnection();
        var second = budget.TryOpenConnection();
        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.Null(budget.TryOpenConnection());
        Assert.Equal(2, budget.Snapshot().ConnectionsInUse);

        second!.Dispose();
        using var third = budget.TryOpenConnection();
        Assert.NotNull(third);
    }

    [Fact]
    public async Task A_throttle_halves_the_rate_pauses_for_longer_each_time_and_clean_messages_win_the_rate_back()
    {
        var clock = new FakeTimeProvider();
        using var shaper = new TrafficShaper(Rules, clock);
        var throttled = new List<ShapingThrottled>();
        shaper.Throttled += throttled.Add;
        var budget = shaper.BudgetFor("slow.example", null);

        Assert.Equal(TimeSpan.FromMinutes(1), budget.NoteThrottled());
        // A second reply from a session already under way does not count again.
        Assert.Equal(TimeSpan.FromSeconds(50), Later(clock, TimeSpan.FromSeconds(10), budget.NoteThrottled));
        Assert.True(shaper.IsPaused("slow", out var until));
        Assert.Equal(clock.GetUtcNow() + TimeSpan.FromSeconds(50), until);
        Assert.Equal(ShapingHoldReason.Paused, (await budget.AcquireMessageAsync(CancellationToken.None))?.Reason);
        Assert.Equal(ShapingHoldReason.Paused, budget.Paused()?.Reason);

        clock.Advance(TimeSpan.FromSeconds(50));
        Assert.False(shaper.IsPaused("slow", out _));
        Assert.Equal(TimeSpan.FromMinutes(2), budget.NoteThrottled());
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(TimeSpan.FromMinutes(4), budget.NoteThrottled());
        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(TimeSpan.FromMinutes(4), budget.NoteThrottled()); // capped
        var snapshot = budget.Snapshot();
        Assert.Equal(1, snapshot.CurrentPerMinute); // 4 → 2 → 1 → floor 1
        Assert.Equal(4, snapshot.ConsecutiveThrottles);
        Assert.Equal([1, 2, 3, 4], throttled.Select(t => t.ConsecutiveThrottles));

        clock.Advance(TimeSpan.FromMinutes(4));
        // Each clean message wins back a quarter of the configured 4 per minute: one per message.
        budget.NoteClean();
        Assert.Equal(2, budget.Snapshot().CurrentPerMinute);
        budget.NoteClean();
        budget.NoteClean();
        var recovered = budget.Snapshot();
        Assert.Equal(4, recovered.CurrentPerMinute);
        Assert.Equal(0, recovered.ConsecutiveThrottles);
        Assert.Null(recovered.PausedUntil);
        // Recovered: the next throttle starts from the first pause again.
        Assert.Equal(TimeSpan.FromMinutes(1), budget.NoteThrottled());
    }

    [Fact]
    public async Task A_budget_without_a_configured_rate_is_slowed_from_what_it_was_sending_and_unlimited_again_once_recovered()
    {
        var clock = new FakeTimeProvider();
        using var shaper = new TrafficShaper(Rules, clock);
        var budget = shaper.BudgetFor("open.example", null);
        for (var i = 0; i < 40; i++)
        {
            Assert.Null(await budget.AcquireMessageAsync(CancellationToken.None));
        }

        budget.NoteThrottled();

        Assert.Equal(20, budget.Snapshot().CurrentPerMinute);
        clock.Advance(TimeSpan.FromMinutes(1));
        for (var i = 0; i < 4; i++)
        {
            budget.NoteClean();
        }
        Assert.Null(budget.Snapshot().CurrentPerMinute);
        Assert.Equal(0, budget.Snapshot().ConsecutiveThrottles);
    }

    private static TimeSpan Later(FakeTimeProvider clock, TimeSpan after, Func<TimeSpan> action)
    {
        clock.Advance(after);
        return action();
    }
}
