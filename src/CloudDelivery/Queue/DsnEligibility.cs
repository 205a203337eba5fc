namespace CloudDelivery.Queue;

/// <summary>Which DSN, if any, a recipient's transition owes its sender.</summary>
public enum DsnKind
{
    None,

    /// <summary>"failed" (RFC 3464 §2.3.3): the recipient failed or expired.</summary>
    Failure,

    /// <summary>"delayed": still being retried, past the delay-DSN threshold, the first time.</summary>
    Delay,
}

/// <summary>Who gets a DSN after a transition.</summary>
public static class DsnEligibility
{
    /// <summary>
    /// The DSN <paramref name="transition"/> of <paramref name="recipient"/> owes. None about a DSN or to the
    /// null sender (RFC 3464 §2, RFC 5321 §4.5.5: that would risk loops), nor about a TLSRPT report (its
    /// failures show in the next report, as mox does), nor for a delivery.
    /// </summary>
    public static DsnKind Of(QueuedRecipient recipient, RecipientTransition transition) =>
        MayNotify(recipient) ? KindOf(transition) : DsnKind.None;

    /// <summary>Whether any DSN about <paramref name="recipient"/> may go to its sender.</summary>
    public static bool MayNotify(QueuedRecipient recipient) =>
        !recipient.IsDsn && !recipient.IsTlsReport && recipient.Sender.Length > 0;

    /// <summary>The DSN the transition calls for before asking who would receive it.</summary>
    public static DsnKind KindOf(RecipientTransition transition) => transition.State switch
    {
        QueuedRecipientState.Failed or QueuedRecipientState.Expired => DsnKind.Failure,
        QueuedRecipientState.Queued when transition.DelayDsnDue => DsnKind.Delay,
        _ => DsnKind.None,
    };
}
