using System.Text;
using MailKit;

namespace CloudDelivery.Smtp;

/// <summary>
/// Watches the start of an SMTP conversation through MailKit's protocol-logger hook, to learn what MailKit
/// does not expose: the server's greeting name (TLSRPT "receiving-mx-helo"), the raw EHLO keywords
/// (LIMITS RCPTMAX, RFC 9422 §4) and whether the last command sent was STARTTLS. It is switched off once
/// the session is set up, so message data never passes through it.
/// </summary>
internal sealed class SmtpConversationCapture : IProtocolLogger
{
    private readonly StringBuilder serverText = new();

    public bool Capturing { get; set; } = true;

    /// <summary>The verb of the last command the client wrote ("EHLO", "STARTTLS"...).</summary>
    public string LastClientVerb { get; private set; } = string.Empty;

    public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }

    /// <summary>The name the server gave in its 220 greeting (RFC 5321 §4.3.1).</summary>
    public string GreetingName { get; private set; } = string.Empty;

    /// <summary>EHLO keywords with parameters of the most recent 250 EHLO reply, upper-cased, e.g. "LIMITS RCPTMAX=2".</summary>
    public IReadOnlyList<string> EhloKeywords { get; private set; } = [];

    private bool expectEhloReply;

    public void LogConnect(Uri uri)
    {
    }

    public void LogClient(byte[] buffer, int offset, int count)
    {
        if (!Capturing)
        {
            return;
        }
        var text = Encoding.ASCII.GetString(buffer, offset, Math.Min(count, 64));
        var end = text.IndexOfAny([' ', '\r', '\n']);
        LastClientVerb = (end < 0 ? text : text[..end]).ToUpperInvariant();
        expectEhloReply = LastClientVerb is "EHLO";
        serverText.Clear();
    }

    public void LogServer(byte[] buffer, int offset, int count)
    {
        if (!Capturing)
        {
            return;
        }
        serverText.Append(Encoding.Latin1.GetString(buffer, offset, count));
        var text = serverText.ToString();
        if (!text.EndsWith('\n'))
        {
            return;
        }
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        var last = lines[^1];
        if (last.Length >= 4 && last[3] == '-')
        {
            return; // continuation lines follow
        }
        if (GreetingName.Length == 0 && lines[0].StartsWith("220", StringComparison.Ordinal))
        {
            var rest = lines[0].Length > 4 ? lines[0][4..] : string.Empty;
            var space = rest.IndexOf(' ', StringComparison.Ordinal);
            GreetingName = space < 0 ? rest : rest[..space];
        }
        else if (expectEhloReply && lines[0].StartsWith("250", StringComparison.Ordinal))
        {
            // The first line is the greeting-like "250-name", the rest are keywords (RFC 5321 §4.1.1.1).
            EhloKeywords = lines.Skip(1).Select(l => l.Length > 4 ? l[4..].Trim().ToUpperInvariant() : string.Empty).Where(k => k.Length > 0).ToArray();
        }
        serverText.Clear();
    }

    /// <summary>RCPTMAX from "LIMITS" (RFC 9422 §4.2), or 0 when the server states no limit.</summary>
    public int RcptMax
    {
        get
        {
            foreach (var keyword in EhloKeywords)
            {
                if (!keyword.StartsWith("LIMITS ", StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (var pair in keyword[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    if (eq > 0 && pair[..eq] == "RCPTMAX" && int.TryParse(pair[(eq + 1)..], out var max) && max > 0)
                    {
                        return max;
                    }
                }
            }
            return 0;
        }
    }

    public void Dispose()
    {
    }
}
