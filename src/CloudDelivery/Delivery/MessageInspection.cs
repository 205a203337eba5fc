using System.Text;

namespace CloudDelivery.Delivery;

/// <summary>What the engine needs to know about a message's bytes before sending them.</summary>
public sealed record MessageProperties(bool Has8BitContent, bool HeadersNeedSmtpUtf8, bool TlsRequiredNoHeader, bool HasBareLineFeeds);

/// <summary>
/// Reads a message once to learn how it must be sent: 8-bit bytes (BODY=8BITMIME, RFC 6152), UTF-8 in the
/// header section (SMTPUTF8, RFC 6532), a "TLS-Required: No" header (RFC 8689 §5), and bare LF line
/// endings, which SMTP does not allow (RFC 5321 §2.3.8) and which the caller must fix before storing.
/// </summary>
public static class MessageInspection
{
    public static MessageProperties Inspect(ReadOnlySpan<byte> message)
    {
        var has8Bit = false;
        var headers8Bit = false;
        var bareLf = false;
        var inHeaders = true;
        var lineStart = 0;
        var tlsRequiredNo = false;
        for (var i = 0; i < message.Length; i++)
        {
            var b = message[i];
            if (b >= 0x80)
            {
                has8Bit = true;
                headers8Bit |= inHeaders;
            }
            if (b != '\n')
            {
                continue;
            }
            if (i == 0 || message[i - 1] != '\r')
            {
                bareLf = true;
            }
            if (inHeaders)
            {
                var line = message[lineStart..i].TrimEnd((byte)'\r');
                if (line.Length == 0)
                {
                    inHeaders = false;
                }
                else if (IsTlsRequiredNo(line))
                {
                    tlsRequiredNo = true;
                }
            }
            lineStart = i + 1;
        }
        return new MessageProperties(has8Bit, headers8Bit, tlsRequiredNo, bareLf);
    }

    /// <summary>Returns the message with every bare LF turned into CRLF, the line ending SMTP requires.</summary>
    public static byte[] NormalizeLineEndings(ReadOnlySpan<byte> message)
    {
        var output = new List<byte>(message.Length + 64);
        for (var i = 0; i < message.Length; i++)
        {
            if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r'))
            {
                output.Add((byte)'\r');
            }
            output.Add(message[i]);
        }
        return [.. output];
    }

    private static bool IsTlsRequiredNo(ReadOnlySpan<byte> line)
    {
        var colon = line.IndexOf((byte)':');
        if (colon < 0)
        {
            return false;
        }
        var name = Encoding.ASCII.GetString(line[..colon]).Trim();
        var value = Encoding.ASCII.GetString(line[(colon + 1)..]).Trim();
        // RFC 8689 §5: the header field "TLS-Required" with the value "No", case-insensitive.
        return name.Equals("TLS-Required", StringComparison.OrdinalIgnoreCase) && value.Equals("No", StringComparison.OrdinalIgnoreCase);
    }
}
