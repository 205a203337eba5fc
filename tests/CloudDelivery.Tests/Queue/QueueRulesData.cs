using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Messages;
using CloudDelivery.Queue;
using CloudDelivery.Smtp;

namespace CloudDelivery.Tests.Queue;

/// <summary>Recipients and results for the queue-rule tests.</summary>
internal static class QueueRulesData
{
    public static readonly DateTimeOffset Submitted = new(2026, 12, 1, 8, 0, 0, TimeSpan.Zero);

    public static readonly RetrySchedule ExactSchedule = new() { JitterSeconds = 0 };

    public static QueuedRecipient Recipient(int attempts = 0, bool delayDsnSent = false, string sender = "sender@sender.example", string body = "blob-1", TlsRequirement tls = TlsRequirement.Default, bool isDsn = false, bool isTlsReport = false, string messageId = "m1", string recipient = "r@dest.example") => new()
    {
        MessageId = messageId,
        Sender = sender,
        Recipient = recipient,
        BodyIdentity = body,
        TlsRequirement = tls,
        IsDsn = isDsn,
        IsTlsReport = isTlsReport,
        Attempts = attempts,
        DelayDsnSent = delayDsnSent,
        SubmittedAt = Submitted,
        NextAttemptAt = Submitted,
    };

    public static RecipientResult Result(RecipientStatus status, SmtpReply reply, string? host = "mx.dest.example") =>
        new("m1", EmailAddress.Parse("r@dest.example"), status, host, null, reply);

    public static RecipientResult Temporary(string? host = "mx.dest.example") => Result(RecipientStatus.Temporary, new SmtpReply(451, "4.3.0", "try again later"), host);
}
