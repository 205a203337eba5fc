using CloudDelivery.Addressing;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Delivery;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Azure.Suppression;

/// <summary>
/// The suppression list's two hooks into the recipient lifecycle: bounced addresses are added after their
/// outcome is saved, and suppressed recipients are recorded at submission instead of being queued.
/// </summary>
public static class BounceSuppression
{
    /// <summary>The event type of a recipient the suppression list kept from being queued.</summary>
    public const string SuppressedEvent = "suppressed";

    /// <summary>
    /// Adds the recipient of every saved outcome whose failure says the address or its domain does not
    /// exist (<see cref="BounceClassifier.SuppressesAddress"/>), in the sender's domain scope or the
    /// global one (<see cref="SuppressionOptions.Scope"/>). Messages of the null sender (DSNs) add nothing:
    /// they have no sender domain, and a bounce of a bounce says little about the address. Never throws: a
    /// failed write is logged, it does not fail or repeat the delivery. <paramref name="classifier"/> is the
    /// engine's (the shipped rules when null), so the operator's rules decide here as they do in events.
    /// </summary>
    public static async Task AddBouncesAsync(SuppressionList? list, IEnumerable<(RecipientRecord Record, RecipientResult Result)> outcomes, ILogger log, CancellationToken cancellationToken, BounceClassifier? classifier = null)
    {
        classifier ??= BounceClassifier.Default;
        if (list is null || !list.Options.Enabled)
        {
            return;
        }
        foreach (var (record, result) in outcomes)
        {
            if (!classifier.SuppressesAddress(result) || record.Sender.Length == 0
                || !EmailAddress.TryParse(record.Sender, out var sender, out _) || !EmailAddress.TryParse(record.Recipient, out var recipient, out _))
            {
                continue;
            }
            var category = BounceClassification.Name(classifier.Classify(result));
            var scope = list.Options.BouncesAreGlobal ? SuppressionKeys.Global : SuppressionKeys.ScopeOf(sender);
            var expires = list.Options.BounceExpiry is { } expiry ? list.Time.GetUtcNow() + expiry : (DateTimeOffset?)null;
            try
            {
                await list.AddAsync(recipient, scope, $"{category}: {result.Reply}", category, "bounce", record.MessageId, expires, cancellationToken);
            }
            catch (Exception e) when (Submission.SubmissionEndpoint.IsStorageTrouble(e, CancellationToken.None))
            {
                log.LogWarning(e, "Could not add a bounced address of message {MessageId} to the suppression list", record.MessageId);
            }
        }
    }

    /// <summary>
    /// Turns a new record into the record of a suppressed recipient: final at once, no body, and a first
    /// event "suppressed" with the entry's reason (what status shows and the event outbox emits).
    /// </summary>
    public static void MarkSuppressed(RecipientRecord record, SuppressionMatch match, DateTimeOffset now)
    {
        record.State = RecipientState.Suppressed;
        record.Body = string.Empty;
        record.InlineBody = null;
        record.Events = System.Text.Json.JsonSerializer.Serialize(new[] { new DeliveryEvent(now, SuppressedEvent, $"suppressed ({match.Scope}): {match.Reason}") });
    }
}
