using CloudDelivery.Messages;

namespace CloudDelivery.Queue;

/// <summary>What makes queued recipients one SMTP transaction: the same body, sender and TLS requirement.</summary>
/// <param name="BodyIdentity">The stored body (<see cref="QueuedRecipient.BodyIdentity"/>).</param>
/// <param name="Sender">Envelope sender; empty for the null sender.</param>
/// <param name="TlsRequirement">REQUIRETLS (RFC 8689 §4) and "TLS-Required: No" (RFC 8689 §5) apply per message.</param>
public sealed record MessageKey(string BodyIdentity, string Sender, TlsRequirement TlsRequirement);

/// <summary>Groups queued recipients into messages, one MAIL FROM with several RCPT TO each.</summary>
public static class MessageGrouping
{
    /// <summary>The key of <paramref name="recipient"/>'s message.</summary>
    public static MessageKey KeyOf(QueuedRecipient recipient) => new(recipient.BodyIdentity, recipient.Sender, recipient.TlsRequirement);

    /// <summary>
    /// <paramref name="items"/> grouped by the message of each one's recipient, in order of first
    /// appearance, items in their order within a group.
    /// </summary>
    public static IReadOnlyList<IGrouping<MessageKey, T>> Group<T>(IEnumerable<T> items, Func<T, QueuedRecipient> recipientOf) =>
        items.GroupBy(item => KeyOf(recipientOf(item))).ToList();
}
