using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Shaping;

/// <summary>What one instance's traffic shaper shows and takes of throttle state (an adapter over the engine's shaper).</summary>
public interface IThrottleStateExchange
{
    /// <summary>The current throttle state of every key the shaper has throttle state for, with when it last changed.</summary>
    IReadOnlyList<ThrottleState> ThrottleStates();

    /// <summary>Applies a state another instance saw: its pause and lowered rate hold here too.</summary>
    void Apply(ThrottleState state);
}

/// <summary>
/// Shares throttle state between instances through <see cref="ThrottleStateTable"/>, one round per
/// <see cref="SharedShapingOptions.SharedStateInterval"/>: writes the transitions this instance's shaper
/// made since the last round (a throttle seen, a recovery) and applies the newer ones other instances wrote.
/// A receiver that throttles one instance is then paused by all of them within one interval, so the
/// other instances do not go on hammering it from the same IP.
/// </summary>
/// <remarks>
/// One query per instance per interval (2,880 a day at 30 s) and one write per key per transition; nothing
/// per message. A round that fails (storage unreachable) is retried next interval by the supervised loop;
/// meanwhile each instance keeps shaping on what it knows, which is the per-instance share of every budget.
/// </remarks>
public sealed class SharedThrottleState(ThrottleStateTable table, IThrottleStateExchange shaper, TimeProvider time, string instance, ILogger? logger = null)
{
    /// <summary>The supervised loop's name in health.</summary>
    public const string LoopName = "shaping-share";

    private readonly ILogger log = logger ?? NullLogger.Instance;
    private readonly Lock gate = new();

    /// <summary>Per key, the newest state this instance wrote or applied: nothing older is written or applied again.</summary>
    private readonly Dictionary<string, DateTimeOffset> known = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>This instance's name in the rows it writes.</summary>
    public string Instance => instance;

    /// <summary>A name for this process that no other instance has.</summary>
    public static string NewInstanceName()
    {
        var name = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}";
        return name.Length <= 120 ? name : name[^120..];
    }

    /// <summary>One round: write this instance's new transitions, then apply the others' newer ones.</summary>
    public async Task RunRoundAsync(CancellationToken cancellationToken)
    {
        foreach (var state in Unpublished())
        {
            await table.WriteAsync(state with { Instance = instance }, cancellationToken);
            lock (gate)
            {
                known[state.ShapingKey] = state.ChangedAt;
            }
            log.LogInformation("Shared the throttle state of {Key}: paused until {PausedUntil:u}, rate {Rate}", state.ShapingKey, state.PausedUntil, state.MessagesPerMinute?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "as configured");
        }
        var rows = await table.ReadChangedSinceAsync(time.GetUtcNow() - SharedShapingOptions.Horizon, cancellationToken);
        foreach (var row in rows.Where(r => r.Instance != instance))
        {
            lock (gate)
            {
                if (known.TryGetValue(row.ShapingKey, out var seen) && seen >= row.ChangedAt)
                {
                    continue;
                }
                known[row.ShapingKey] = row.ChangedAt;
            }
            shaper.Apply(row);
            log.LogInformation("Applied {Instance}'s throttle state of {Key}: paused until {PausedUntil:u}", row.Instance, row.ShapingKey, row.PausedUntil);
        }
    }

    private List<ThrottleState> Unpublished()
    {
        var states = shaper.ThrottleStates();
        lock (gate)
        {
            return [.. states.Where(s => !known.TryGetValue(s.ShapingKey, out var seen) || s.ChangedAt > seen)];
        }
    }
}
