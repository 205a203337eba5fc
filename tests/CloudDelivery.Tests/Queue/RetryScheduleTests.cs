using CloudDelivery.Queue;

namespace CloudDelivery.Tests.Queue;

/// <summary>The retry schedule and its jitter, without storage: mox's backoff (queue/queue.go).</summary>
public class RetryScheduleTests
{
    /// <summary>A jitter source that always draws the same end of the range it is asked for.</summary>
    private sealed class FixedEnd(bool highest) : Random
    {
        public List<(int Min, int Max)> Asked { get; } = [];

        public override int Next(int minValue, int maxValue)
        {
            Asked.Add((minValue, maxValue));
            return highest ? maxValue - 1 : minValue;
        }
    }

    [Theory]
    [InlineData(1, 450)]
    [InlineData(2, 900)]
    [InlineData(3, 1800)]
    [InlineData(7, 450 * 64)]
    public void Without_jitter_the_delay_doubles_from_seven_and_a_half_minutes(int attempts, int seconds)
    {
        var schedule = new RetrySchedule { JitterSeconds = 0, JitterSource = new FixedEnd(highest: true) };

        Assert.Equal(TimeSpan.FromSeconds(seconds), schedule.DelayAfter(attempts));
        Assert.Equal(TimeSpan.FromSeconds(seconds), schedule.NominalDelay(attempts));
    }

    [Fact]
    public void Without_jitter_no_random_number_is_drawn()
    {
        var source = new FixedEnd(highest: true);
        var schedule = new RetrySchedule { JitterSeconds = 0, JitterSource = source };

        schedule.DelayAfter(3);

        Assert.Empty(source.Asked);
    }

    [Fact]
    public void By_default_the_first_interval_moves_by_up_to_five_seconds_either_way()
    {
        var low = new FixedEnd(highest: false);
        var high = new FixedEnd(highest: true);

        Assert.Equal(TimeSpan.FromSeconds(445), new RetrySchedule { JitterSource = low }.DelayAfter(1));
        Assert.Equal(TimeSpan.FromSeconds(454), new RetrySchedule { JitterSource = high }.DelayAfter(1));
        // Whole seconds from [-5, +5), as mox draws them.
        Assert.Equal((-5, 5), Assert.Single(low.Asked));
    }

    [Theory]
    [InlineData(2, 445 * 2, 454 * 2)]
    [InlineData(4, 445 * 8, 454 * 8)]
    public void The_jitter_doubles_with_the_delay(int attempts, int lowest, int highest)
    {
        Assert.Equal(TimeSpan.FromSeconds(lowest), new RetrySchedule { JitterSource = new FixedEnd(highest: false) }.DelayAfter(attempts));
        Assert.Equal(TimeSpan.FromSeconds(highest), new RetrySchedule { JitterSource = new FixedEnd(highest: true) }.DelayAfter(attempts));
    }

    [Fact]
    public void Seeded_draws_stay_inside_the_window_and_vary()
    {
        var schedule = new RetrySchedule { JitterSource = new Random(11) };

        var delays = Enumerable.Range(0, 200).Select(_ => schedule.DelayAfter(1)).ToList();

        Assert.All(delays, d => Assert.InRange(d, TimeSpan.FromSeconds(445), TimeSpan.FromSeconds(454)));
        Assert.All(delays, d => Assert.Equal(0, d.Ticks % TimeSpan.TicksPerSecond));
        Assert.True(delays.Distinct().Count() > 5, "the jitter should spread the retries");
    }

    [Fact]
    public void Retry_until_is_the_nominal_schedule_whatever_the_jitter()
    {
        var submitted = new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero);
        var schedule = new RetrySchedule { JitterSource = new FixedEnd(highest: true) };

        // Seven waits between eight attempts: 450 s × (1 + 2 + … + 64).
        Assert.Equal(submitted + TimeSpan.FromSeconds(450 * 127), schedule.RetryUntil(submitted));
    }
}
