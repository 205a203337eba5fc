using CloudDelivery.Addressing;
using MimeKit;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// The message <c>deliver</c> sends when no <c>--message</c> file is given, composed from flags as swaks
/// does: From and To from the envelope, a Subject, a Date and a Message-ID (RFC 5322 §3.6), extra header
/// fields, and a plain-text body (UTF-8, MIME-encoded by MimeKit as needed).
/// </summary>
internal static class TestMessageComposer
{
    public const string DefaultSubject = "CloudDelivery test message";

    public static byte[] Compose(EmailAddress? sender, IReadOnlyList<EmailAddress> recipients, string? subject, IReadOnlyList<string> headers, string? body, string hostname)
    {
        var message = new MimeMessage();
        message.From.Add(sender is null ? new MailboxAddress("Mail Delivery System", $"MAILER-DAEMON@{hostname}") : MailboxAddress.Parse(sender.ToString()));
        foreach (var recipient in recipients)
        {
            message.To.Add(MailboxAddress.Parse(recipient.ToString()));
        }
        message.Subject = subject ?? DefaultSubject;
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(sender?.Domain.ToString() ?? hostname);
        foreach (var field in headers)
        {
            // "Name: value" as on the wire; a field name is printable ASCII without colon (RFC 5322 §2.2).
            var colon = field.IndexOf(':', StringComparison.Ordinal);
            var name = colon > 0 ? field[..colon].Trim() : string.Empty;
            if (name.Length == 0 || !name.All(c => c is > ' ' and < '\u007f' and not ':'))
            {
                throw new UsageException($"--header {field}: expected \"Name: value\"");
            }
            message.Headers.Add(name, field[(colon + 1)..].Trim());
        }
        message.Body = new TextPart("plain") { Text = (body ?? $"A test message sent by clouddelivery deliver at {message.Date:u}.").ReplaceLineEndings("\r\n") + "\r\n" };
        using var bytes = new MemoryStream();
        message.WriteTo(new MimeKit.FormatOptions { NewLineFormat = NewLineFormat.Dos }, bytes);
        return bytes.ToArray();
    }

    /// <summary>Whether any of the composing flags was given.</summary>
    public static bool Requested(string? subject, IReadOnlyList<string> headers, string? body) =>
        subject is not null || headers.Count > 0 || body is not null;
}
