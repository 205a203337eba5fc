using CloudDelivery.Shaping;

namespace CloudDelivery.Azure.Shaping;

/// <summary>
/// The engine's <see cref="TrafficShaper"/> as <see cref="SharedThrottleState"/> sees it: the throttles it
/// raised (from its <see cref="TrafficShaper.Throttled"/> event), the recoveries that followed (a budget
/// that was throttled here and whose rate is whole again), and the pauses other instances saw, applied.
/// </summary>
public sealed class EngineThrottleExchange : IThrottleStateExchange
{
    private readonly TrafficShaper shaper;
    private readonly TimeProvider time;
    private readonly Lock gate = new();

    /// <summary>Per key, the latest transition this instance made itself.</summary>
    private readonly Dictionary<string, ThrottleState> local = new(StringComparer.Ordinal);

    public EngineThrottleExchange(TrafficShaper shaper, TimeProvider time)
    {
        this.shaper = shaper;
        this.time = time;
        shaper.Throttled += OnThrottled;
    }

    private void OnThrottled(ShapingThrottled throttled)
    {
        lock (gate)
        {
            local[throttled.Key] = new ThrottleState(throttled.Key, throttled.PausedUntil, throttled.CurrentPerMinute, time.GetUtcNow(), string.Empty);
        }
    }

    public IReadOnlyList<ThrottleState> ThrottleStates()
    {
        var now = time.GetUtcNow();
        var budgets = shaper.Snapshot().ToDictionary(s => s.Key, StringComparer.Ordinal);
        lock (gate)
        {
            foreach (var (key, state) in local.ToList())
            {
                // Recovered here: no pause and no throttle left (the rate is whole), or the budget went idle and was dropped.
                var recovered = !budgets.TryGetValue(key, out var budget) || (budget.PausedUntil is null && budget.ConsecutiveThrottles == 0);
                if (recovered && state.MessagesPerMinute is not null)
                {
                    local[key] = new ThrottleState(key, now, null, now, string.Empty);
                }
            }
            return [.. local.Values];
        }
    }

    public void Apply(ThrottleState state) => shaper.ApplyShared(state.ShapingKey, state.PausedUntil, state.MessagesPerMinute);
}
