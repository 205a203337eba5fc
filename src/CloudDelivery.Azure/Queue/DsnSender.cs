using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Dsn;
using CloudDelivery.Queue;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// Composes the DSNs (RFC 3464) that saved outcomes owe their senders and submits them to the queue as
/// null-sender messages: one DSN per message and kind (delayed or failed), listing its recipients. The
/// delivery handler and the operator's <c>queue fail</c> both send through it, so a DSN reads the same
/// whoever ended the recipient.
/// </summary>
internal sealed class DsnSender(OutboundQueue queue, string reportingMta, ILogger? logger = null, BounceClassifier? classifier = null)
{
    /// <summary>Names each recipient's failure in the DSN's words: the engine's configured classifier, as the outcome's category was.</summary>
    private readonly BounceClassifier classify = classifier ?? BounceClassifier.Default;

    private readonly ILogger log = logger ?? NullLogger.Instance;

    /// <summary>Sends the DSNs <paramref name="owed"/> calls for; a DSN that cannot be sent is logged, the outcomes stand.</summary>
    public async Task SendAsync(IReadOnlyCollection<OwedDsn> owed, CancellationToken cancellationToken)
    {
        var now = queue.Time.GetUtcNow();
        // Who gets one is the engine's rule (DsnEligibility): not the null sender, nor about a DSN or a report.
        foreach (var message in owed.Where(f => DsnEligibility.MayNotify(f.Record.ToQueued())).GroupBy(f => (f.Record.MessageId, f.Delayed)))
        {
            var first = message.First().Record;
            if (!EmailAddress.TryParse(first.Sender, out var sender, out var senderError))
            {
                // A stored sender that does not parse has nowhere a DSN could go.
                log.LogError("No DSN for message {MessageId}: its sender cannot be parsed: {Error}", first.MessageId, senderError);
                continue;
            }
            try
            {
                var entries = message.Select(f => new DsnRecipient(
                    f.Result.Recipient,
                    f.Delayed,
                    f.Result.Reply,
                    f.Result.Host,
                    f.Record.LastAttemptAt ?? now,
                    f.Delayed ? queue.Options.Retry.RetryUntil(f.Record.SubmittedAt) : null,
                    classify.Classify(f.Result))).ToArray();
                await using var original = (await queue.BodyOfAsync(first, message.Select(f => f.Record), cancellationToken)).OpenRead();
                var (dsn, _) = DsnComposer.Compose(reportingMta, sender, original, first.SubmittedAt, entries, now);
                await queue.SubmitAsync(new SubmissionRequest
                {
                    Sender = string.Empty,
                    Recipients = [first.Sender],
                    Message = new MemoryStream(dsn),
                    IsDsn = true,
                }, cancellationToken);
            }
            catch (Exception e) when (e is global::Azure.RequestFailedException or SubmissionException or IOException or InvalidOperationException)
            {
                // The outcome is recorded; a lost DSN is logged, it does not undo the delivery result.
                log.LogError(e, "Could not send a DSN for message {MessageId}", first.MessageId);
            }
        }
    }
}
