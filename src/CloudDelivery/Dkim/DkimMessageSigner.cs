using System.Runtime.InteropServices;
using CloudDelivery.Addressing;
using MimeKit;
using MimeKit.Cryptography;

namespace CloudDelivery.Dkim;

/// <summary>
/// DKIM-signs outgoing messages (RFC 6376) with MimeKit's <see cref="DkimSigner"/>, choosing the key by
/// the domain of the RFC 5322 From header. The result is the DKIM-Signature header field alone, to be
/// prepended to the message bytes, which are otherwise left exactly as they are: the engine sends stored
/// bytes verbatim, so the signature is computed over exactly what will be sent.
/// </summary>
/// <remarks>
/// Input is a whole message with CRLF line endings, as the queue stores it. Only the header section is
/// parsed (into memory); the body is fed to the body hash straight from the caller's bytes or stream, so
/// memory stays flat in the message size and the body hash covers the stored bytes themselves rather
/// than MimeKit's re-serialisation of a parsed MIME tree. Instances are thread-safe.
/// </remarks>
public sealed class DkimMessageSigner
{
    /// <summary>
    /// A header section larger than this is not signed. It is far beyond anything receivers accept
    /// (RFC 5322 §2.1.1 limits lines, not the section), and it bounds the memory one signature takes.
    /// </summary>
    public const int MaxHeaderSectionBytes = 1024 * 1024;

    private readonly Dictionary<string, DkimKey> keys;
    private readonly string[] headers;
    private readonly TimeProvider time;

    /// <param name="keys">One key per domain.</param>
    /// <param name="headers">Header fields to sign; <see cref="DefaultHeaders"/> when null.</param>
    /// <param name="time">The clock of the t= tag; the system clock when null.</param>
    /// <exception cref="ArgumentException">Two keys for one domain, or a header list without From or with a field RFC 6376 §5.4 advises against.</exception>
    public DkimMessageSigner(IEnumerable<DkimKey> keys, IEnumerable<string>? headers = null, TimeProvider? time = null)
    {
        this.time = time ?? TimeProvider.System;
        this.keys = new Dictionary<string, DkimKey>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            if (!this.keys.TryAdd(key.Domain.Ascii, key))
            {
                throw new ArgumentException($"more than one DKIM key for {key.Domain.Ascii}", nameof(keys));
            }
        }
        this.headers = ValidateHeaders(headers ?? DefaultHeaders);
    }

    /// <summary>
    /// The default h= list: the fields that carry what the recipient reads and how it is decoded (RFC 6376
    /// §5.4.1's recommendations), plus the one-click unsubscribe pair (RFC 8058 §4 requires both signed).
    /// </summary>
    public static IReadOnlyList<string> DefaultHeaders { get; } =
    [
        "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
        // Present only in TLSRPT report mails (RFC 8460 §5.3); signed so the report's subject cannot be forged.
        "TLS-Report-Domain", "TLS-Report-Submitter",
    ];

    /// <summary>The configured keys.</summary>
    public IReadOnlyCollection<DkimKey> Keys => keys.Values;

    /// <summary>The header fields signed when present (From always, and once more than present).</summary>
    public IReadOnlyList<string> Headers => headers;

    /// <summary>
    /// The key that would sign the message starting with <paramref name="messageStart"/> (which must
    /// hold the whole header section), or null when its From domain has none.
    /// </summary>
    public DkimKey? KeyFor(ReadOnlyMemory<byte> messageStart)
    {
        using var stream = AsStream(messageStart);
        return ReadHeaderSection(stream, out _) is { } section && Parse(section) is { } parsed ? KeyFor(parsed) : null;
    }

    /// <summary>Signs a message held in memory.</summary>
    /// <returns>The DKIM-Signature header field, CRLF-terminated, to put in front of the message; null when not signed.</returns>
    public byte[]? Sign(ReadOnlyMemory<byte> message)
    {
        using var stream = AsStream(message);
        return Sign(stream);
    }

    /// <summary>
    /// Signs the message in <paramref name="message"/>, from its start to its end. The stream must be
    /// seekable; it is read twice (header section, then body) and its position is left undefined.
    /// </summary>
    /// <returns>The DKIM-Signature header field, CRLF-terminated, to put in front of the message; null when not signed.</returns>
    public byte[]? Sign(Stream message)
    {
        if (!message.CanSeek)
        {
            throw new ArgumentException("the message stream must be seekable", nameof(message));
        }
        message.Position = 0;
        if (ReadHeaderSection(message, out var bodyOffset) is not { } section)
        {
            return null;
        }
        if (Parse(section) is not { } parsed || KeyFor(parsed) is not { } key)
        {
            return null;
        }
        parsed.Body = new RawBody(message, bodyOffset, parsed.Body?.Headers);
        var signer = new ClockedDkimSigner(key, time)
        {
            // RFC 6376 §3.4.2 and §3.4.4: relaxed/relaxed survives the re-folding and trailing-whitespace
            // changes that relays are known to make, which simple/simple does not.
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        };
        signer.Sign(FormatOptions.Default, parsed, FieldsToSign(parsed));
        var signature = parsed.Headers[0];
        return signature.Id == HeaderId.DkimSignature
            ? Serialize(signature)
            : throw new InvalidOperationException("MimeKit did not put the DKIM-Signature header first");
    }

    /// <summary>
    /// The h= list for this message: each configured field as many times as it occurs, so every instance
    /// is signed (RFC 6376 §5.4.2, bottom-up), and From once more than it occurs. The extra From signs a
    /// "null" instance, so a From added above the signed one breaks the signature (RFC 6376 §8.15) — the
    /// DMARC-relevant header cannot be spoofed by prepending another. Fields the message lacks are left
    /// out, so intermediaries may still add, say, List-Unsubscribe without breaking the signature.
    /// </summary>
    private string[] FieldsToSign(MimeMessage message)
    {
        var fields = new List<string>();
        foreach (var name in headers)
        {
            // MimeKit reads Content-* fields from the body entity's headers (DkimVerifierBase.WriteHeaders).
            var list = name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ? message.Body?.Headers ?? [] : message.Headers;
            var count = list.Count(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (name.Equals("From", StringComparison.OrdinalIgnoreCase))
            {
                count++;
            }
            fields.AddRange(Enumerable.Repeat(name.ToLowerInvariant(), count));
        }
        return [.. fields];
    }

    /// <summary>
    /// The key for the RFC 5322 From domain. RFC 5322 §3.6 allows exactly one From field; a message with
    /// none or several, or a From whose mailboxes are in different domains, is not signed: no single
    /// signing domain aligns with it (RFC 7489 §3.1).
    /// </summary>
    private DkimKey? KeyFor(MimeMessage message)
    {
        if (message.Headers.Count(h => h.Id == HeaderId.From) != 1)
        {
            return null;
        }
        var domains = message.From.Mailboxes
            .Select(m => Domain.TryParse(m.Domain, out var domain, out _) ? domain.Ascii : null)
            .Distinct(StringComparer.Ordinal)
            .ToList();
        return domains is [{ } ascii] && keys.TryGetValue(ascii, out var key) ? key : null;
    }

    /// <summary>
    /// The parsed header section; null when MimeKit finds none (the message does not start with a header
    /// field, RFC 5322 §2.2). Such a message is sent unsigned rather than refused: it is the sender's.
    /// </summary>
    private static MimeMessage? Parse(byte[] headerSection)
    {
        using var stream = new MemoryStream(headerSection, writable: false);
        try
        {
            return MimeMessage.Load(stream);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads the header section and the empty line after it (RFC 5322 §2.1), leaving the body offset. A
    /// message without an empty line is all header section; it gets one for parsing. Null when the section
    /// exceeds <see cref="MaxHeaderSectionBytes"/>.
    /// </summary>
    private static byte[]? ReadHeaderSection(Stream stream, out long bodyOffset)
    {
        var section = new MemoryStream();
        var buffer = new byte[8192];
        var lineIsEmpty = true;
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            for (var i = 0; i < read; i++)
            {
                var b = buffer[i];
                if (b == '\n')
                {
                    if (lineIsEmpty)
                    {
                        section.Write(buffer, 0, i + 1);
                        bodyOffset = section.Length;
                        return section.ToArray();
                    }
                    lineIsEmpty = true;
                }
                else if (b != '\r')
                {
                    lineIsEmpty = false;
                }
            }
            section.Write(buffer, 0, read);
            if (section.Length > MaxHeaderSectionBytes)
            {
                bodyOffset = 0;
                return null;
            }
        }
        bodyOffset = section.Length;
        if (!lineIsEmpty)
        {
            section.Write("\r\n"u8);
        }
        section.Write("\r\n"u8);
        return section.ToArray();
    }

    /// <summary>
    /// The header field as it goes on the wire: MimeKit folds with the platform's newline; RFC 5322 §2.2
    /// wants CRLF. Only line breaks change, which relaxed header canonicalisation (RFC 6376 §3.4.2)
    /// removes anyway, so the signature still holds.
    /// </summary>
    private static byte[] Serialize(Header header)
    {
        var output = new List<byte>(header.RawField.Length + header.RawValue.Length + 8);
        output.AddRange(header.RawField);
        output.Add((byte)':');
        byte previous = 0;
        foreach (var b in header.RawValue)
        {
            if (b == '\n' && previous != '\r')
            {
                output.Add((byte)'\r');
            }
            output.Add(b);
            previous = b;
        }
        if (previous != '\n')
        {
            output.AddRange("\r\n"u8);
        }
        return [.. output];
    }

    private static string[] ValidateHeaders(IEnumerable<string> names)
    {
        // MimeKit refuses these (DkimSignerBase.DkimShouldNotInclude): trace and per-hop fields that
        // change in transit, Bcc which is removed, and our own signature (RFC 6376 §5.4).
        string[] refused = ["Return-Path", "Received", "Comments", "Keywords", "Bcc", "Resent-Bcc", "DKIM-Signature"];
        var list = names.Select(n => n.Trim()).Where(n => n.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        if (list.FirstOrDefault(n => refused.Contains(n, StringComparer.OrdinalIgnoreCase) || n.Any(c => c <= ' ' || c >= 127 || c == ':')) is { } bad)
        {
            throw new ArgumentException($"the header field '{bad}' cannot be signed", nameof(names));
        }
        // RFC 6376 §5.4: "The From header field MUST be signed".
        return list.Any(n => n.Equals("From", StringComparison.OrdinalIgnoreCase))
            ? list
            : throw new ArgumentException("the signed header fields must include From (RFC 6376 §5.4)", nameof(names));
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> bytes) =>
        MemoryMarshal.TryGetArray(bytes, out var segment) && segment.Array is { } array
            ? new MemoryStream(array, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);

    /// <summary>
    /// The message body as MimeKit's body hash sees it: the caller's bytes from the end of the header
    /// section on, written verbatim. It carries the message's Content-* fields because MimeKit signs those
    /// from the body entity's headers.
    /// </summary>
    /// <summary>MimeKit's signer with t= (RFC 6376 §3.5) from our clock, so the one TimeProvider rules it too.</summary>
    private sealed class ClockedDkimSigner(DkimKey key, TimeProvider time) : DkimSigner(key.PrivateKey, key.Domain.Ascii, key.Selector, key.MimeKitAlgorithm)
    {
        protected override long GetTimestamp() => time.GetUtcNow().ToUnixTimeSeconds();
    }

    private sealed class RawBody : MimeEntity
    {
        private readonly Stream source;
        private readonly long offset;

        public RawBody(Stream source, long offset, HeaderList? contentHeaders)
            : base(new ContentType("application", "octet-stream"))
        {
            this.source = source;
            this.offset = offset;
            Headers.Clear();
            foreach (var header in contentHeaders ?? [])
            {
                Headers.Add(header.Clone());
            }
        }

        public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
        {
        }

        // Only the body hash writes this entity (content only); the header section is hashed from the
        // parsed headers.
        public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            source.Position = offset;
            source.CopyTo(stream);
        }

        public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            source.Position = offset;
            await source.CopyToAsync(stream, cancellationToken);
        }
    }
}
