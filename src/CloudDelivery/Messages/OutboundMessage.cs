using CloudDelivery.Addressing;

namespace CloudDelivery.Messages;

/// <summary>What the sender asked of transport security for a message.</summary>
public enum TlsRequirement
{
    /// <summary>Follow the recipient domain's policies (MTA-STS, DANE); otherwise opportunistic TLS.</summary>
    Default,

    /// <summary>
    /// REQUIRETLS (RFC 8689 §4): deliver only over TLS verified by DANE or an enforced MTA-STS policy, to
    /// servers that advertise REQUIRETLS, which then carry the requirement onwards.
    /// </summary>
    RequireTls,

    /// <summary>
    /// "TLS-Required: No" header (RFC 8689 §5): the sender prefers delivery over security, so MTA-STS, DANE
    /// and certificate failures do not stop delivery (a TLS report about them still does).
    /// </summary>
    TlsRequiredNo,
}

/// <summary>
/// The bytes of a message, as submitted. They are sent exactly as they are (dot-stuffing aside), so a DKIM
/// signature over them still verifies at the receiver. Opened once per transaction.
/// </summary>
public abstract class MessageBody
{
    /// <summary>Length in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Opens a fresh stream positioned at the first byte.</summary>
    public abstract Stream OpenRead();

    /// <summary>
    /// Whether the bytes end with CRLF, when the body knows without reading (stored bodies are normalised
    /// at submission); null makes the sender look.
    /// </summary>
    public virtual bool? EndsWithCrLf => null;

    public static MessageBody FromBytes(byte[] bytes) => new BytesBody(bytes);

    public static MessageBody FromFile(string path) => new FileBody(path);

    private sealed class BytesBody(byte[] bytes) : MessageBody
    {
        public override long Length => bytes.Length;

        public override Stream OpenRead() => new MemoryStream(bytes, writable: false);
    }

    private sealed class FileBody(string path) : MessageBody
    {
        public override long Length => new FileInfo(path).Length;

        public override Stream OpenRead() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, useAsync: true);
    }
}

/// <summary>
/// One message to deliver to recipients of one recipient domain: an SMTP transaction's worth (or several,
/// when the server limits recipients per transaction).
/// </summary>
public sealed class OutboundMessage
{
    /// <summary>The caller's id for the message, echoed in results.</summary>
    public required string Id { get; init; }

    /// <summary>The reverse path; null for the null sender "&lt;&gt;" of DSNs and reports (RFC 5321 §4.5.5).</summary>
    public EmailAddress? Sender { get; init; }

    /// <summary>Recipients, all in the recipient domain of the delivery.</summary>
    public required IReadOnlyList<EmailAddress> Recipients { get; init; }

    public required MessageBody Body { get; init; }

    /// <summary>The message has bytes over 127 (BODY=8BITMIME, RFC 6152).</summary>
    public bool Has8BitContent { get; init; }

    /// <summary>Headers or addresses need SMTPUTF8 (RFC 6531).</summary>
    public bool NeedsSmtpUtf8 { get; init; }

    public TlsRequirement TlsRequirement { get; init; }
}
