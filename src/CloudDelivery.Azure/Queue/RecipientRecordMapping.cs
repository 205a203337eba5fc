using System.Net;
using System.Text.Json;
using CloudDelivery.Delivery;
using CloudDelivery.Messages;
using CloudDelivery.Queue;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// The values of <see cref="RecipientRecord.State"/> in the table. Queries compare the column with these;
/// everything else goes through <see cref="RecipientRecordMapping"/>.
/// </summary>
public static class RecipientState
{
    public const string Queued = "queued";

    /// <summary>
    /// Held by an operator (queue hold): not delivered, not expired and not purged until released; its
    /// attempts and retry clock stay as they were (see OperatorActions).
    /// </summary>
    public const string Held = "held";

    public const string Delivered = "delivered";

    public const string Failed = "failed";

    public const string Expired = "expired";

    public const string Dropped = "dropped";

    /// <summary>Not queued at submission: the address is suppressed (see Suppression/SuppressionList).</summary>
    public const string Suppressed = "suppressed";
}

/// <summary>
/// Between the table's record (string columns, as stored since the first version) and the engine's typed
/// <see cref="QueuedRecipient"/>: the one place the state and TLS requirement columns are read and written.
/// </summary>
public static class RecipientRecordMapping
{
    /// <summary>The TLS requirement column for a REQUIRETLS message (RFC 8689 §4).</summary>
    public const string RequireTlsColumn = "requiretls";

    /// <summary>The TLS requirement column for a "TLS-Required: No" message (RFC 8689 §5).</summary>
    public const string TlsRequiredNoColumn = "tls-required-no";

    public const string DefaultTlsColumn = "default";

    /// <summary>The typed view of <paramref name="record"/>.</summary>
    public static QueuedRecipient ToQueued(this RecipientRecord record) => new()
    {
        MessageId = record.MessageId,
        Sender = record.Sender,
        Recipient = record.Recipient,
        // An inline body is held by the message's first record: its identity is the message's.
        BodyIdentity = record.Body == RecipientRecord.InlineBodyMarker ? $"inline:{record.MessageId}" : record.Body,
        TlsRequirement = TlsRequirementOf(record.TlsRequirement),
        IsDsn = record.IsDsn,
        IsTlsReport = record.IsTlsReport,
        State = StateOf(record.State),
        Attempts = record.Attempts,
        SubmittedAt = record.SubmittedAt,
        NextAttemptAt = record.NextAttemptAt,
        DelayDsnSent = record.DelayDsnSent,
    };

    /// <summary>
    /// Writes <paramref name="transition"/> for <paramref name="result"/> attempted at <paramref name="now"/>
    /// into <paramref name="record"/>, with the addresses dialled for the next attempt's family preference and
    /// the result's category by <paramref name="classifier"/> (the engine's; the shipped rules when null).
    /// </summary>
    public static void Apply(this RecipientRecord record, RecipientTransition transition, RecipientResult result, DateTimeOffset now, IReadOnlyDictionary<string, List<IPAddress>> dialled, BounceClassifier? classifier = null)
    {
        record.State = StateColumn(transition.State);
        record.Attempts = transition.Attempts;
        record.NextAttemptAt = transition.NextAttemptAt;
        record.DelayDsnSent = transition.DelayDsnSent;
        record.LastAttemptAt = now;
        record.LastCode = result.Reply.Code;
        record.LastEnhancedCode = result.Reply.EnhancedCode;
        record.LastText = result.Reply.Text;
        record.LastHost = result.Host;
        record.LastCategory = BounceClassification.Name((classifier ?? BounceClassifier.Default).Classify(result));
        record.DialledAddresses = JsonSerializer.Serialize(dialled.ToDictionary(p => p.Key, p => p.Value.Select(a => a.ToString()).ToArray()));
        record.AddEvent(now, transition.EventType, transition.EventDetail);
    }

    public static QueuedRecipientState StateOf(string column) => column switch
    {
        RecipientState.Held => QueuedRecipientState.Held,
        RecipientState.Delivered => QueuedRecipientState.Delivered,
        RecipientState.Failed => QueuedRecipientState.Failed,
        RecipientState.Expired => QueuedRecipientState.Expired,
        RecipientState.Dropped => QueuedRecipientState.Dropped,
        RecipientState.Suppressed => QueuedRecipientState.Suppressed,
        _ => QueuedRecipientState.Queued,
    };

    public static string StateColumn(QueuedRecipientState state) => state switch
    {
        QueuedRecipientState.Held => RecipientState.Held,
        QueuedRecipientState.Delivered => RecipientState.Delivered,
        QueuedRecipientState.Failed => RecipientState.Failed,
        QueuedRecipientState.Expired => RecipientState.Expired,
        QueuedRecipientState.Dropped => RecipientState.Dropped,
        QueuedRecipientState.Suppressed => RecipientState.Suppressed,
        _ => RecipientState.Queued,
    };

    /// <summary>Anything but the two named values is the default, as records have always been read.</summary>
    public static TlsRequirement TlsRequirementOf(string column) => column switch
    {
        RequireTlsColumn => TlsRequirement.RequireTls,
        TlsRequiredNoColumn => TlsRequirement.TlsRequiredNo,
        _ => TlsRequirement.Default,
    };

    public static string TlsRequirementColumn(TlsRequirement requirement) => requirement switch
    {
        TlsRequirement.RequireTls => RequireTlsColumn,
        TlsRequirement.TlsRequiredNo => TlsRequiredNoColumn,
        _ => DefaultTlsColumn,
    };
}
