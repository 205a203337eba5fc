using CloudDelivery.Messages;
using MimeKit;

namespace CloudDelivery.Smtp;

/// <summary>
/// Lets MailKit's SmtpClient send a message's bytes exactly as submitted. MailKit sends a MimeMessage by
/// writing it out again, which may re-fold headers or re-encode parts and so break a DKIM signature. This
/// adapter is a MimeMessage without headers whose body writes the stored bytes verbatim; MailKit still
/// does the SMTP parts (dot-stuffing, SIZE, BODY=8BITMIME, SMTPUTF8, pipelining).
/// </summary>
internal static class RawMessage
{
    private static readonly byte[] EmptyMessage = "\r\n"u8.ToArray();

    // MimeMessage writes a blank line between the (here empty) headers and the body when the body's header
    // list "has a body separator", which MimeKit sets for every list it does not parse from text. The raw
    // bytes carry their own separator, so ours must have none; MimeKit exposes the flag only internally.
    private static readonly System.Reflection.PropertyInfo BodySeparator =
        typeof(HeaderList).GetProperty("HasBodySeparator", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)
        ?? throw new InvalidOperationException("MimeKit's HeaderList.HasBodySeparator is gone; RawMessage needs another way to suppress the separator");

    public static MimeMessage Create(MessageBody body, bool has8Bit)
    {
        // A parsed message is in "loose" compliance mode; one built with new MimeMessage() is "strict" and
        // would always write a blank line before the body.
        var message = MimeMessage.Load(new MemoryStream(EmptyMessage, writable: false));
        message.Headers.Clear();
        message.Body = new RawContent(body, has8Bit);
        return message;
    }

    /// <summary>Bytes on the wire: the body, plus a CRLF when it does not end with one (RFC 5321 §4.1.1.4).</summary>
    public static long WireLength(MimeMessage message) => message.Body is RawContent raw ? raw.WireLength : 0;

    /// <summary>
    /// The raw content. It is a Multipart so that MailKit's scan for 8-bit parts, which walks the MIME tree
    /// to decide on BODY=8BITMIME, finds a child marked 8bit exactly when the message has 8-bit bytes; the
    /// child is never written.
    /// </summary>
    private sealed class RawContent : Multipart
    {
        private readonly MessageBody body;
        private readonly bool endsWithNewLine;

        public RawContent(MessageBody body, bool has8Bit)
        {
            this.body = body;
            Headers.Clear();
            BodySeparator.SetValue(Headers, false);
            if (has8Bit)
            {
                Add(new MimePart("application", "octet-stream") { ContentTransferEncoding = ContentEncoding.EightBit });
            }
            endsWithNewLine = body.EndsWithCrLf ?? EndsWithCrLf(body);
        }

        public long WireLength => body.Length + (endsWithNewLine ? 0 : 2);

        public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            using var source = body.OpenRead();
            source.CopyTo(stream);
            if (!endsWithNewLine)
            {
                stream.Write("\r\n"u8);
            }
        }

        public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            await using var source = body.OpenRead();
            await source.CopyToAsync(stream, 81920, cancellationToken);
            if (!endsWithNewLine)
            {
                await stream.WriteAsync("\r\n"u8.ToArray(), cancellationToken);
            }
        }

        private static bool EndsWithCrLf(MessageBody body)
        {
            if (body.Length < 2)
            {
                return false;
            }
            using var stream = body.OpenRead();
            if (!stream.CanSeek)
            {
                return true;
            }
            stream.Seek(-2, SeekOrigin.End);
            return stream.ReadByte() == '\r' && stream.ReadByte() == '\n';
        }
    }
}
