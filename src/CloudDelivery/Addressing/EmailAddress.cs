using System.Net;

namespace CloudDelivery.Addressing;

/// <summary>
/// An RFC 5321 mailbox: local part and domain. The domain is either a <see cref="Addressing.Domain"/> or an
/// address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321 §4.1.3). The local part is kept exactly as
/// given: it is the receiving system's to interpret (RFC 5321 §2.4).
/// </summary>
public sealed class EmailAddress : IEquatable<EmailAddress>
{
    private EmailAddress(string localPart, NextHop domain, string? verbatim = null)
    {
        LocalPart = localPart;
        Domain = domain;
        this.verbatim = verbatim;
    }

    /// <summary>The text of an address taken without parsing (<see cref="Unchecked"/>); null for parsed ones.</summary>
    private readonly string? verbatim;

    public string LocalPart { get; }

    /// <summary>The part after the @: a domain name or an IP literal.</summary>
    public NextHop Domain { get; }

    /// <summary>True when the local part or the domain's U-label form needs SMTPUTF8 (RFC 6531).</summary>
    public bool IsInternational => LocalPart.Any(c => c > 127) || (Domain.Name is { } d && d.Unicode != d.Ascii);

    /// <summary>
    /// Parses an RFC 5321 §4.1.2 Mailbox: Local-part "@" ( Domain / address-literal ), the local part a
    /// Dot-string or a Quoted-string, with UTF-8 allowed in both and U-labels in the domain (RFC 6531 §3.3).
    /// The one grammar for every way in (HTTP submission, the queue, the CLI, stored records), so whatever
    /// it accepts can be carried by MAIL FROM / RCPT TO and MimeKit's MailboxAddress.
    /// </summary>
    /// <exception cref="FormatException">The address is not a valid mailbox; the message says why.</exception>
    public static EmailAddress Parse(string address)
    {
        if (!TryParse(address, out var parsed, out var error))
        {
            throw new FormatException(error);
        }
        return parsed;
    }

    /// <summary>Parses like <see cref="Parse"/> without throwing: false and a reason for anything that is not a mailbox.</summary>
    public static bool TryParse(string? address, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out EmailAddress? parsed, out string error)
    {
        parsed = null;
        if (string.IsNullOrEmpty(address))
        {
            error = "empty address";
            return false;
        }
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets, its angle brackets included.
        if (address.Length > MaxMailboxOctets || !IsWellFormedUtf16(address) || System.Text.Encoding.UTF8.GetByteCount(address) > MaxMailboxOctets)
        {
            error = address.Length > MaxMailboxOctets || IsWellFormedUtf16(address) ? $"address longer than {MaxMailboxOctets} octets (RFC 5321 §4.5.3.1.3)" : "address is not valid Unicode";
            return false;
        }
        var at = LocalPartLength(address, out error);
        if (at < 0)
        {
            return false;
        }
        var local = address[..at];
        if (at == address.Length || address[at] != '@')
        {
            error = $"address {address} is not local-part@domain";
            return false;
        }
        var domainText = address[(at + 1)..];
        if (domainText.Contains('@', StringComparison.Ordinal))
        {
            // The finding that made this grammar strict: splitting at the last @ accepted a@b@example, which no
            // SMTP server or MIME library can carry. An @ belongs in a local part only inside quotes.
            error = $"address {address} has more than one @ (an @ in the local part must be inside a quoted string)";
            return false;
        }
        // RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
        if (System.Text.Encoding.UTF8.GetByteCount(local) > 64)
        {
            error = $"local part of {address} is longer than 64 octets (RFC 5321 §4.5.3.1.1)";
            return false;
        }
        if (domainText.Length == 0 || domainText.EndsWith('.'))
        {
            // RFC 5321's Domain has no root dot; DNS names elsewhere may, but a mailbox may not.
            error = $"address {address} has {(domainText.Length == 0 ? "an empty" : "a trailing dot in its")} domain";
            return false;
        }
        if (!NextHop.TryParse(domainText, out var domain, out var domainError))
        {
            error = $"address {address}: {domainError}";
            return false;
        }
        var candidate = new EmailAddress(local, domain);
        if (!CanEncode(candidate, out var encodingError))
        {
            error = $"address {address} cannot be encoded for SMTP: {encodingError}";
            return false;
        }
        parsed = candidate;
        error = string.Empty;
        return true;
    }

    private const int MaxMailboxOctets = 254;

    /// <summary>
    /// The length of the local part at the start of <paramref name="address"/> (RFC 5321 §4.1.2 Dot-string
    /// or Quoted-string, RFC 6531 §3.3 UTF-8 extensions), or -1 with <paramref name="error"/> set.
    /// </summary>
    private static int LocalPartLength(string address, out string error)
    {
        error = string.Empty;
        var i = 0;
        if (address[0] == '"')
        {
            i = 1;
            while (true)
            {
                if (i >= address.Length)
                {
                    error = $"unterminated quoted local part in {address}";
                    return -1;
                }
                var c = address[i];
                if (c == '"')
                {
                    return i + 1;
                }
                if (c == '\\')
                {
                    // quoted-pairSMTP = %d92 %d32-126: a backslash quotes one printable ASCII character.
                    if (i + 1 >= address.Length || address[i + 1] is < ' ' or > '~')
                    {
                        error = $"invalid quoted pair in local part of {address}";
                        return -1;
                    }
                    i += 2;
                    continue;
                }
                // qtextSMTP = %d32-33 / %d35-91 / %d93-126, and UTF-8 beyond ASCII (RFC 6531 §3.3).
                if (c < ' ' || c == 0x7f || (c > 0x7f && !IsNonAsciiText(address, i)))
                {
                    error = $"invalid character U+{(int)c:X4} in quoted local part of {address}";
                    return -1;
                }
                i++;
            }
        }
        // Dot-string = Atom *("." Atom): no leading, trailing or doubled dot.
        var atomLength = 0;
        for (; i < address.Length && address[i] != '@'; i++)
        {
            var c = address[i];
            if (c == '.')
            {
                if (atomLength == 0)
                {
                    error = $"local part of {address} has an empty atom (a leading, trailing or doubled dot)";
                    return -1;
                }
                atomLength = 0;
                continue;
            }
            if (!IsAtext(c) && !(c > 0x7f && IsNonAsciiText(address, i)))
            {
                error = c is '"' or ' ' or '\\'
                    ? $"local part of {address} needs quoting: only a quoted string may contain {(c == ' ' ? "spaces" : $"{c}")}"
                    : $"invalid character U+{(int)c:X4} in the local part of {address}";
                return -1;
            }
            atomLength++;
        }
        if (atomLength == 0)
        {
            error = i == 0 ? $"address {address} has an empty local part" : $"local part of {address} ends with a dot";
            return -1;
        }
        return i;
    }

    /// <summary>RFC 5322 §3.2.3 atext, which RFC 5321 §4.1.2 uses for atoms.</summary>
    private static bool IsAtext(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-/=?^_`{|}~".Contains(c, StringComparison.Ordinal);

    /// <summary>
    /// A non-ASCII character allowed in an address (RFC 6531 §3.3 UTF8-non-ascii): anything printable, not a
    /// control, space, format character or noncharacter, which would be invisible or broken on the wire.
    /// </summary>
    private static bool IsNonAsciiText(string text, int index)
    {
        var c = text[index];
        if (char.IsSurrogate(c))
        {
            // Pairs were checked by IsWellFormedUtf16; each half is judged with its partner.
            var start = char.IsHighSurrogate(c) ? index : index - 1;
            var category = System.Globalization.CharUnicodeInfo.GetUnicodeCategory(text, start);
            return category is not (System.Globalization.UnicodeCategory.PrivateUse or System.Globalization.UnicodeCategory.OtherNotAssigned);
        }
        return System.Globalization.CharUnicodeInfo.GetUnicodeCategory(c) is not (
            System.Globalization.UnicodeCategory.Control
            or System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.SpaceSeparator
            or System.Globalization.UnicodeCategory.LineSeparator
            or System.Globalization.UnicodeCategory.ParagraphSeparator
            or System.Globalization.UnicodeCategory.Surrogate
            or System.Globalization.UnicodeCategory.PrivateUse
            or System.Globalization.UnicodeCategory.OtherNotAssigned);
    }

    private static bool IsWellFormedUtf16(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// True when MimeKit's MailboxAddress, which MailKit sends MAIL FROM and RCPT TO from, takes the address
    /// in both its forms (U-labels with SMTPUTF8, A-labels without). The grammar above should make this
    /// always so; checking it here keeps a gap between the two from reaching delivery.
    /// </summary>
    public static bool CanEncode(EmailAddress address, out string error)
    {
        try
        {
            foreach (var smtpUtf8 in (bool[])[true, false])
            {
                var text = address.ToSmtpString(smtpUtf8);
                var mailbox = new MimeKit.MailboxAddress(string.Empty, text);
                _ = mailbox.GetAddress(idnEncode: !smtpUtf8);
            }
            error = string.Empty;
            return true;
        }
        catch (Exception e) when (e is MimeKit.ParseException or ArgumentException or FormatException)
        {
            error = e.Message;
            return false;
        }
    }

    /// <summary>
    /// An address as stored, taken without the grammar, so that a record written by an older version (or by
    /// hand) that no longer parses can still be reported on: it fails alone, with a DSN naming it, instead of
    /// failing the run it is in. <see cref="IsEncodable"/> is false for it unless the text does parse.
    /// </summary>
    /// <param name="text">The stored address.</param>
    /// <param name="fallbackDomain">Where it was queued, used when the text has no domain that parses.</param>
    public static EmailAddress Unchecked(string text, NextHop fallbackDomain)
    {
        if (TryParse(text, out var parsed, out _))
        {
            return parsed;
        }
        var at = text.LastIndexOf('@');
        var domain = at >= 0 && NextHop.TryParse(text[(at + 1)..], out var hop, out _) ? hop : fallbackDomain;
        return new EmailAddress(at >= 0 ? text[..at] : text, domain, text);
    }

    /// <summary>
    /// False, with the reason, for an address MAIL FROM / RCPT TO cannot carry: one taken <see cref="Unchecked"/>
    /// that the grammar refuses. The engine checks each recipient before a session, so such an address fails
    /// alone, permanently (RFC 3463 5.1.3), never the transaction around it.
    /// </summary>
    public bool IsEncodable(out string reason)
    {
        if (verbatim is not null)
        {
            return TryParse(verbatim, out _, out reason);
        }
        return CanEncode(this, out reason);
    }

    /// <summary>The address as used in MAIL FROM / RCPT TO: ASCII domain unless SMTPUTF8 is in use.</summary>
    public string ToSmtpString(bool smtpUtf8) => verbatim ?? LocalPart + "@" + Domain.ToSmtpString(smtpUtf8);

    public bool Equals(EmailAddress? other) => other is not null && LocalPart == other.LocalPart && Domain.Equals(other.Domain) && verbatim == other.verbatim;

    public override bool Equals(object? obj) => obj is EmailAddress other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(LocalPart, Domain, verbatim);

    public override string ToString() => ToSmtpString(smtpUtf8: true);
}

/// <summary>
/// Where mail for an address goes first: a domain name (looked up for MX records) or an IP address
/// literal, which is delivered to directly without DNS (RFC 5321 §5.1).
/// </summary>
public sealed class NextHop : IEquatable<NextHop>
{
    private NextHop(Domain? name, IPAddress? address)
    {
        Name = name;
        Address = address;
    }

    /// <summary>The domain name, or null for an IP literal.</summary>
    public Domain? Name { get; }

    /// <summary>The IP address of an address literal, or null for a domain.</summary>
    public IPAddress? Address { get; }

    public static NextHop FromDomain(Domain domain) => new(domain, null);

    public static NextHop FromAddress(IPAddress address) => new(null, address);

    public static NextHop Parse(string text) => TryParse(text, out var hop, out var error) ? hop : throw new FormatException(error);

    public static bool TryParse(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out NextHop? hop, out string error)
    {
        hop = null;
        if (text.StartsWith('[') && text.EndsWith(']'))
        {
            var inner = text[1..^1];
            var isV6 = inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase);
            if (isV6)
            {
                inner = inner[5..];
            }
            // RFC 5321 §4.1.3: IPv4 as a dotted quad of decimal numbers, IPv6 after "IPv6:" in hex and colons.
            // IPAddress.TryParse is laxer ("1", "0x7f.1", "::1%eth0"); those are no address literals.
            var lexical = isV6 ? inner.Length > 0 && inner.All(c => char.IsAsciiHexDigit(c) || c is ':' or '.') : IsDottedQuad(inner);
            if (!lexical || !IPAddress.TryParse(inner, out var ip) || (isV6 != (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)))
            {
                error = $"invalid address literal {text}";
                return false;
            }
            hop = FromAddress(ip);
            error = string.Empty;
            return true;
        }
        if (!Addressing.Domain.TryParse(text, out var domain, out error))
        {
            return false;
        }
        hop = FromDomain(domain);
        return true;
    }

    private static bool IsDottedQuad(string text)
    {
        var parts = text.Split('.');
        return parts.Length == 4 && parts.All(p => p.Length is >= 1 and <= 3 && p.All(char.IsAsciiDigit) && int.Parse(p, System.Globalization.CultureInfo.InvariantCulture) <= 255);
    }

    public string ToSmtpString(bool smtpUtf8)
    {
        if (Name is not null)
        {
            return smtpUtf8 ? Name.Unicode : Name.Ascii;
        }
        return Address!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[IPv6:{Address}]" : $"[{Address}]";
    }

    public bool Equals(NextHop? other) => other is not null && Equals(Name, other.Name) && Equals(Address, other.Address);

    public override bool Equals(object? obj) => obj is NextHop other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Name, Address);

    public override string ToString() => ToSmtpString(smtpUtf8: false);
}
