using CloudDelivery.Azure.Events;

namespace CloudDelivery.Tests.Events;

/// <summary>The wait of a failing sink: doubling from the first wait, capped, whatever the settings.</summary>
public class EventBackoffTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(4, 8)]
    [InlineData(9, 256)]
    [InlineData(10, 300)]
    [InlineData(1000, 300)]
    public void The_wait_doubles_per_failure_up_to_the_cap(int failures, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), EventDispatcher.BackoffAfter(failures, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5)));

    [Fact]
    public void A_long_first_wait_after_many_failures_is_the_cap_not_an_overflow()
    {
        // One day doubled thirty times is beyond TimeSpan's range: the cap must be reached first.
        Assert.Equal(TimeSpan.FromDays(3650), EventDispatcher.BackoffAfter(40, TimeSpan.FromDays(1), TimeSpan.FromDays(3650)));
        Assert.Equal(TimeSpan.MaxValue, EventDispatcher.BackoffAfter(100, TimeSpan.FromDays(1), TimeSpan.MaxValue));
    }
}
