using CloudDelivery.Delivery;

namespace CloudDelivery.Queue;

/// <summary>
/// What one delivery attempt did to a queued recipient: its new state and attempt count, when it is tried
/// next, whether its delay DSN is now due, and the event the sender can read.
/// </summary>
/// <param name="State">Delivered, Failed, Expired, or Queued for a retry.</param>
/// <param name="Attempts">Attempts made, this one included.</param>
/// <param name="NextAttemptAt">When a retried recipient is next due; its previous value otherwise.</param>
/// <param name="DelayDsnSent">Whether a delay DSN has been sent (or is due now) for this recipient.</param>
/// <param name="DelayDsnDue">This attempt crossed the delay-DSN threshold: a delay DSN is owed now, once.</param>
/// <param name="EventType">delivered, failed, expired, delayed, or throttled / deferred (see <see cref="Deferral"/>).</param>
/// <param name="EventDetail">The reply and host, for the sender's status.</param>
public sealed record RecipientTransition(
    QueuedRecipientState State,
    int Attempts,
    DateTimeOffset NextAttemptAt,
    bool DelayDsnSent,
    bool DelayDsnDue,
    string EventType,
    string EventDetail)
{
    /// <summary>
    /// The transition of <paramref name="recipient"/> for <paramref name="result"/>, attempted at
    /// <paramref name="now"/>. A permanent reply fails the recipient (RFC 5321 §4.2.1: 5yz, do not repeat
    /// the transaction); a temporary one is retried on <paramref name="schedule"/> until its attempts run out.
    /// A deferral (traffic shaping, or a receiver's throttling reply) waits without spending an attempt,
    /// until the message outlives its schedule (<see cref="Deferral"/>).
    /// </summary>
    public static RecipientTransition Of(QueuedRecipient recipient, RecipientResult result, DateTimeOffset now, RetrySchedule schedule, BounceClassifier? classifier = null)
    {
        var attempts = recipient.Attempts + 1;
        var where = result.Host is null ? string.Empty : $" at {result.Host}";
        switch (result.Status)
        {
            case RecipientStatus.Delivered:
                return Final(QueuedRecipientState.Delivered, "delivered", $"{result.Reply}{where}");
            case RecipientStatus.Permanent:
                return Final(QueuedRecipientState.Failed, "failed", $"{result.Reply}{where}");
            case RecipientStatus.Deferred when now < schedule.RetryUntil(recipient.SubmittedAt):
                return Deferred();
            case RecipientStatus.Deferred:
                return Final(QueuedRecipientState.Expired, "expired", $"gave up: still held back at {schedule.RetryUntil(recipient.SubmittedAt):u}, the end of the retry schedule: {result.Reply}{where}");
        }
        if (attempts >= schedule.MaxAttempts)
        {
            return Final(QueuedRecipientState.Expired, "expired", $"gave up after {attempts} attempts: {result.Reply}{where}");
        }
        var next = now + schedule.DelayAfter(attempts);
        // A "delayed" DSN (RFC 3464 §2.3.3) tells the sender we keep trying; once per recipient is enough.
        var delayDsnDue = attempts >= schedule.DelayDsnAfterAttempts && !recipient.DelayDsnSent;
        return new RecipientTransition(
            QueuedRecipientState.Queued,
            attempts,
            next,
            recipient.DelayDsnSent || delayDsnDue,
            delayDsnDue,
            "delayed",
            $"attempt {attempts}: {result.Reply}{where}; next attempt {next:u}");

        RecipientTransition Deferred()
        {
            var next = now + Deferral.WaitOf(result.RetryAfter);
            var (type, why) = Deferral.IsThrottled(result, classifier)
                ? (Deferral.ThrottledEvent, $"throttled by {result.Host}: {result.Reply}")
                : (Deferral.DeferredEvent, $"held back by traffic shaping: {result.Reply}");
            return new RecipientTransition(QueuedRecipientState.Queued, recipient.Attempts, next, recipient.DelayDsnSent, false, type, $"{why}; next attempt {next:u}");
        }

        RecipientTransition Final(QueuedRecipientState state, string type, string detail) =>
            new(state, attempts, recipient.NextAttemptAt, recipient.DelayDsnSent, false, type, detail);
    }

    /// <summary>The recipient after this transition.</summary>
    public QueuedRecipient AppliedTo(QueuedRecipient recipient) => recipient with
    {
        State = State,
        Attempts = Attempts,
        NextAttemptAt = NextAttemptAt,
        DelayDsnSent = DelayDsnSent,
    };
}
