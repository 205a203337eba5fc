using CloudDelivery.Messages;

namespace CloudDelivery.Queue;

/// <summary>Where a queued recipient stands.</summary>
public enum QueuedRecipientState
{
    /// <summary>Waiting for its next attempt (first or retry).</summary>
    Queued,

    /// <summary>
    /// Held by an operator: never attempted until released. Expiry counts attempts, which a held recipient
    /// does not make, so it does not expire while held; release makes it due at once.
    /// </summary>
    Held,

    Delivered,

    /// <summary>Permanently failed; a DSN went to the sender.</summary>
    Failed,

    /// <summary>Given up after the retry schedule; a DSN went to the sender.</summary>
    Expired,

    /// <summary>Removed by an operator.</summary>
    Dropped,

    /// <summary>Never queued: the address is on the suppression list; no attempt, no DSN.</summary>
    Suppressed,
}

/// <summary>
/// One recipient of one message as the queue's rules see it, whatever stores it: the envelope, what the
/// message is, and where its delivery stands.
/// </summary>
public sealed record QueuedRecipient
{
    public required string MessageId { get; init; }

    /// <summary>Envelope sender; empty for the null sender.</summary>
    public required string Sender { get; init; }

    public required string Recipient { get; init; }

    /// <summary>Names the stored body: recipients with the same body identity share its bytes.</summary>
    public required string BodyIdentity { get; init; }

    public TlsRequirement TlsRequirement { get; init; }

    /// <summary>The message is a DSN: its failures produce no further DSN.</summary>
    public bool IsDsn { get; init; }

    /// <summary>The message is a TLSRPT report: it gets no DSN (its failures show in the next report).</summary>
    public bool IsTlsReport { get; init; }

    public QueuedRecipientState State { get; init; }

    /// <summary>Attempts made so far.</summary>
    public int Attempts { get; init; }

    public DateTimeOffset SubmittedAt { get; init; }

    public DateTimeOffset NextAttemptAt { get; init; }

    public bool DelayDsnSent { get; init; }
}
