using System.Globalization;
using System.Text;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Smtp;
using MimeKit;

namespace CloudDelivery.Dsn;

// Delivery Status Notifications (RFC 3464) tell the sender that mail could not be delivered (action
// "failed") or is taking long (action "delayed"). A DSN is a multipart/report (RFC 6522) with a human
// explanation, a machine-readable message/delivery-status part with one block per recipient, and the
// original message's headers. When addresses need UTF-8, the internationalised variant of RFC 6533 is used
// (message/global-delivery-status, message/global-headers, "utf-8" address types). DSNs are sent from
// the null sender so that they never cause DSNs themselves (RFC 5321 §4.5.5).

/// <summary>What a DSN reports about one recipient.</summary>
/// <param name="Recipient">The recipient as given to us.</param>
/// <param name="Delayed">True for "delayed" (we keep trying), false for "failed".</param>
/// <param name="Reply">The reply that decided it, from the remote server or made up by us.</param>
/// <param name="RemoteMta">The host that gave the reply, if any.</param>
/// <param name="LastAttempt">When delivery was last attempted.</param>
/// <param name="RetryUntil">For delayed: until when we keep trying.</param>
/// <param name="Category">What kind of failure it is (<see cref="BounceClassifier"/>): a sentence the sender understands, and an X- field.</param>
public sealed record DsnRecipient(EmailAddress Recipient, bool Delayed, SmtpReply Reply, string? RemoteMta, DateTimeOffset LastAttempt, DateTimeOffset? RetryUntil = null, BounceCategory Category = BounceCategory.None);

/// <summary>Composes DSN messages with MimeKit.</summary>
public static class DsnComposer
{
    /// <summary>How much of the original message is searched for its header section.</summary>
    private const int MaxHeaderBytes = 256 * 1024;

    /// <summary>
    /// Builds a DSN to <paramref name="originalSender"/> about <paramref name="recipients"/> of one message.
    /// </summary>
    /// <param name="reportingMta">Our host name (Reporting-MTA, and the From address's domain).</param>
    /// <param name="originalSender">The envelope sender of the original message.</param>
    /// <param name="originalMessage">The original message, from which the header section is taken.</param>
    /// <param name="arrival">When we accepted the original message.</param>
    /// <param name="recipients">The recipients to report on; all delayed, or all failed.</param>
    /// <param name="now">The DSN's Date.</param>
    /// <returns>The DSN bytes, CRLF line endings, and whether it needs SMTPUTF8.</returns>
    public static (byte[] Message, bool NeedsSmtpUtf8) Compose(string reportingMta, EmailAddress originalSender, Stream originalMessage, DateTimeOffset arrival, IReadOnlyList<DsnRecipient> recipients, DateTimeOffset now)
    {
        var international = originalSender.IsInternational || recipients.Any(r => r.Recipient.IsInternational);
        var delayed = recipients.All(r => r.Delayed);
        var headerSection = ReadHeaderSection(originalMessage);

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery Subsystem", $"MAILER-DAEMON@{reportingMta}"));
        message.To.Add(new MailboxAddress(string.Empty, originalSender.ToSmtpString(international)));
        message.Subject = delayed ? "Delayed delivery notification" : "Undeliverable: delivery failed";
        message.Date = now;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(reportingMta);
        // RFC 3834 §5: automatic responses are marked so that auto-responders stay quiet.
        message.Headers.Add("Auto-Submitted", "auto-replied");
        var originalId = OriginalMessageId(headerSection);
        if (originalId is not null)
        {
            message.InReplyTo = originalId;
            message.References.Add(originalId);
        }

        var report = new MultipartReport("delivery-status");
        report.Add(new TextPart("plain") { Text = HumanText(reportingMta, recipients, delayed), ContentTransferEncoding = ContentEncoding.QuotedPrintable });

        var status = new StringBuilder();
        // RFC 3464 §2.2: per-message fields.
        status.Append(CultureInfo.InvariantCulture, $"Reporting-MTA: dns; {reportingMta}\r\n");
        status.Append(CultureInfo.InvariantCulture, $"Arrival-Date: {MimeKit.Utils.DateUtils.FormatDate(arrival)}\r\n");
        foreach (var recipient in recipients)
        {
            // RFC 3464 §2.3: one block per recipient, separated by a blank line.
            status.Append("\r\n");
            var addressType = recipient.Recipient.IsInternational ? "utf-8" : "rfc822";
            status.Append(CultureInfo.InvariantCulture, $"Final-Recipient: {addressType}; {recipient.Recipient.ToSmtpString(recipient.Recipient.IsInternational)}\r\n");
            status.Append(CultureInfo.InvariantCulture, $"Action: {(recipient.Delayed ? "delayed" : "failed")}\r\n");
            status.Append(CultureInfo.InvariantCulture, $"Status: {StatusCode(recipient)}\r\n");
            if (recipient.RemoteMta is not null)
            {
                status.Append(CultureInfo.InvariantCulture, $"Remote-MTA: dns; {recipient.RemoteMta}\r\n");
            }
            if (recipient.Reply.Code > 0)
            {
                status.Append(CultureInfo.InvariantCulture, $"Diagnostic-Code: smtp; {OneLine(recipient.Reply.ToString())}\r\n");
            }
            status.Append(CultureInfo.InvariantCulture, $"Last-Attempt-Date: {MimeKit.Utils.DateUtils.FormatDate(recipient.LastAttempt)}\r\n");
            if (recipient.RetryUntil is { } until)
            {
                status.Append(CultureInfo.InvariantCulture, $"Will-Retry-Until: {MimeKit.Utils.DateUtils.FormatDate(until)}\r\n");
            }
            if (recipient.Category != BounceCategory.None)
            {
                // RFC 3464 §7: "X-" fields are for private extensions; bounce processors can read the category.
                status.Append(CultureInfo.InvariantCulture, $"{CategoryField}: {BounceClassification.Name(recipient.Category)}\r\n");
            }
        }
        var statusPart = new MimePart("message", international ? "global-delivery-status" : "delivery-status")
        {
            Content = new MimeContent(new MemoryStream(Encoding.UTF8.GetBytes(status.ToString()))),
            ContentTransferEncoding = international ? ContentEncoding.EightBit : ContentEncoding.SevenBit,
        };
        report.Add(statusPart);
        report.Add(new MimePart(international ? "message" : "text", international ? "global-headers" : "rfc822-headers")
        {
            Content = new MimeContent(new MemoryStream(headerSection)),
            ContentTransferEncoding = headerSection.Any(b => b >= 0x80) ? ContentEncoding.EightBit : ContentEncoding.SevenBit,
        });
        message.Body = report;

        using var output = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        format.International = international;
        message.WriteTo(format, output);
        return (output.ToArray(), international);
    }

    private static string StatusCode(DsnRecipient recipient)
    {
        if (recipient.Reply.EnhancedCode is { } code)
        {
            return code;
        }
        // Without an enhanced code: the class from the reply, "other" detail (RFC 3463 §3.1).
        return recipient.Delayed || recipient.Reply.Code is >= 400 and < 500 ? "4.0.0" : "5.0.0";
    }

    private static string HumanText(string reportingMta, IReadOnlyList<DsnRecipient> recipients, bool delayed)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"This is the mail system at {reportingMta}.\r\n\r\n");
        text.Append(delayed
            ? "Your message could not be delivered yet to the recipients below. Delivery will be retried; you do not need to resend it.\r\n\r\n"
            : "Your message could not be delivered to the recipients below. It will not be retried.\r\n\r\n");
        foreach (var recipient in recipients)
        {
            text.Append(CultureInfo.InvariantCulture, $"<{recipient.Recipient}>: {OneLine(recipient.Reply.ToString())}{(recipient.RemoteMta is null ? string.Empty : $" (from {recipient.RemoteMta})")}\r\n");
            if (Explanation(recipient.Category, recipient.Delayed) is { } explanation)
            {
                text.Append(CultureInfo.InvariantCulture, $"    {explanation}\r\n");
            }
        }
        return text.ToString();
    }

    /// <summary>The per-recipient field of the delivery-status part that names the bounce category.</summary>
    public const string CategoryField = "X-CloudDelivery-Category";

    /// <summary>What <paramref name="category"/> means, in words a sender acts on; null when the reply says no more than its code.</summary>
    public static string? Explanation(BounceCategory category, bool delayed) => category switch
    {
        BounceCategory.BadMailbox => "The address does not exist or no longer takes mail: check it for typing errors.",
        BounceCategory.BadDomain => "The recipient's domain does not exist or does not take mail: check the part after the @.",
        BounceCategory.MailboxFull => delayed ? "The recipient's mailbox is full; we keep trying in case space is freed." : "The recipient's mailbox is full.",
        BounceCategory.PolicyBlock => "The receiving server refused the message under its policy or spam filter.",
        BounceCategory.Authentication => "The receiving server could not confirm the message comes from your domain (SPF, DKIM or DMARC): your domain's mail settings need attention.",
        BounceCategory.TlsPolicy => "The message could not be sent with the encryption it requires.",
        BounceCategory.Throttled => delayed ? "The receiving server limits how fast it accepts mail; we keep trying." : "The receiving server limits how fast it accepts mail and did not take the message in time.",
        BounceCategory.ContentRejected => "The receiving server refused the message's content.",
        BounceCategory.MessageTooBig => "The message is larger than the receiving server accepts: send it with smaller attachments or a link.",
        BounceCategory.Network => delayed ? "The receiving server could not be reached or was busy; we keep trying." : "The receiving server could not be reached or was busy until we gave up.",
        _ => null,
    };

    private static string OneLine(string text) => text.Replace("\r", " ", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    /// <summary>The bytes up to and including the blank line that ends the header section.</summary>
    private static byte[] ReadHeaderSection(Stream message)
    {
        var buffer = new byte[MaxHeaderBytes];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = message.Read(buffer, length, buffer.Length - length)) > 0)
        {
            length += read;
            var end = buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                return buffer[..(end + 4)];
            }
        }
        return buffer[..length];
    }

    private static string? OriginalMessageId(byte[] headerSection)
    {
        try
        {
            var headers = HeaderList.Load(new MemoryStream(headerSection));
            var id = headers[HeaderId.MessageId];
            return id is null ? null : MimeKit.Utils.MimeUtils.EnumerateReferences(id).FirstOrDefault();
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
