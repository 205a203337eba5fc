using CloudDelivery.Delivery;

namespace CloudDelivery.Queue;

/// <summary>
/// How long a recipient that traffic shaping held back (<see cref="RecipientStatus.Deferred"/>) waits, and
/// whether it was a receiver's throttling reply or the shaper's own budget. A deferral spends no attempt
/// and owes no delay DSN: being slowed down is not the recipient failing.
/// </summary>
/// <remarks>
/// A deferral cannot keep a message forever: once the message is older than its whole retry schedule
/// (<see cref="RetrySchedule.RetryUntil"/>, about 16 hours by default) a deferral expires it with a
/// "failed" DSN, as the last temporary failure would have. A receiver that throttles us for that long is
/// refusing the mail in all but name, and the sender was promised an answer by then.
/// </remarks>
public static class Deferral
{
    /// <summary>The wait when the engine gave none: long enough for a per-minute budget to refill.</summary>
    public static readonly TimeSpan DefaultWait = TimeSpan.FromMinutes(1);

    /// <summary>The shortest wait: a zero or negative one would wake the domain again at once and spin.</summary>
    public static readonly TimeSpan MinimumWait = TimeSpan.FromSeconds(5);

    /// <summary>The longest wait: a huge hint (a bad Retry-After, an hourly budget just spent) is looked at again within the hour.</summary>
    public static readonly TimeSpan MaximumWait = TimeSpan.FromHours(1);

    /// <summary>The event type of a receiver's throttling reply.</summary>
    public const string ThrottledEvent = "throttled";

    /// <summary>The event type of a recipient held back by the shaper without being tried.</summary>
    public const string DeferredEvent = "deferred";

    /// <summary><paramref name="retryAfter"/> within [<see cref="MinimumWait"/>, <see cref="MaximumWait"/>]; <see cref="DefaultWait"/> when absent.</summary>
    public static TimeSpan WaitOf(TimeSpan? retryAfter) => retryAfter switch
    {
        null => DefaultWait,
        { } wait when wait < MinimumWait => MinimumWait,
        { } wait when wait > MaximumWait => MaximumWait,
        { } wait => wait,
    };

    /// <summary>
    /// Whether <paramref name="result"/> was a receiver asking us to slow down (a server's reply classified
    /// <see cref="BounceCategory.Throttled"/>) rather than our own shaper holding the recipient back
    /// (no host reached, or a reply the engine made up for the budget).
    /// </summary>
    public static bool IsThrottled(RecipientResult result, BounceClassifier? classifier = null) =>
        result.Host is not null
        && result.LocalFailure == LocalFailure.None
        && (classifier ?? BounceClassifier.Default).Classify(result) == BounceCategory.Throttled;
}
