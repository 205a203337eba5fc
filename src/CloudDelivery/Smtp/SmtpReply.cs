using System.Globalization;

namespace CloudDelivery.Smtp;

/// <summary>
/// A reply of an SMTP server, or a reply CloudDelivery makes up for a failure of its own (a refused
/// dial, missing REQUIRETLS support): the three-digit code (RFC 5321 §4.2), the enhanced status code
/// (RFC 3463, e.g. "5.7.30") when there is one, and the text.
/// </summary>
public sealed record SmtpReply(int Code, string? EnhancedCode, string Text)
{
    /// <summary>2xx: the server accepted.</summary>
    public bool IsPositive => Code is >= 200 and < 300;

    /// <summary>5xx: do not repeat the same request (RFC 5321 §4.2.1).</summary>
    public bool IsPermanent => Code is >= 500 and < 600;

    /// <summary>
    /// Builds a reply from a code and the server's text, taking an enhanced status code from the start of
    /// the text when its class matches the code's (RFC 3463 §2, RFC 2034 §4).
    /// </summary>
    public static SmtpReply FromServer(int code, string text)
    {
        text = text.Trim();
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        var first = space < 0 ? text : text[..space];
        if (IsEnhancedCode(first, code))
        {
            return new SmtpReply(code, first, space < 0 ? string.Empty : text[(space + 1)..].Trim());
        }
        return new SmtpReply(code, null, text);
    }

    private static bool IsEnhancedCode(string candidate, int code)
    {
        var parts = candidate.Split('.');
        if (parts.Length != 3 || parts.Any(p => p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit)))
        {
            return false;
        }
        return parts[0] == (code / 100).ToString(CultureInfo.InvariantCulture);
    }

    public override string ToString() => EnhancedCode is null ? $"{Code} {Text}" : $"{Code} {EnhancedCode} {Text}";
}
