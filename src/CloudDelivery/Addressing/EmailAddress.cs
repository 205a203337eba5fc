using System.Net;

namespace CloudDelivery.Addressing;

/// <summary>
/// An RFC 5321 mailbox: local part and domain. The domain is either a <see cref="Addressing.Domain"/> or an
/// address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321 §4.1.3). The local part is kept exactly as
/// given: it is the receiving system's to interpret (RFC 5321 §2.4).
/// </summary>
public sealed class EmailAddress : IEquatable<EmailAddress>
{
    private EmailAddress(string localPart, NextHop domain)
    {
        LocalPart = localPart;
        Domain = domain;
    }

    public string LocalPart { get; }

    /// <summary>The part after the @: a domain name or an IP literal.</summary>
    public NextHop Domain { get; }

    /// <summary>True when the local part or the domain's U-label form needs SMTPUTF8 (RFC 6531).</summary>
    public bool IsInternational => LocalPart.Any(c => c > 127) || (Domain.Name is { } d && d.Unicode != d.Ascii);

    /// <summary>Parses "local@domain". Rejects CR, LF, NUL, spaces outside quotes, and empty parts.</summary>
    /// <exception cref="FormatException">The address is not a valid mailbox.</exception>
    public static EmailAddress Parse(string address)
    {
        if (!TryParse(address, out var parsed, out var error))
        {
            throw new FormatException(error);
        }
        return parsed;
    }

    public static bool TryParse(string? address, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out EmailAddress? parsed, out string error)
    {
        parsed = null;
        if (string.IsNullOrEmpty(address))
        {
            error = "empty address";
            return false;
        }
        if (address.Length > 254 + 2)
        {
            error = "address too long";
            return false;
        }
        foreach (var c in address)
        {
            // RFC 5321 §4.1.2: no control characters; CR/LF would let a caller inject SMTP commands.
            if (c < 0x20 || c == 0x7f)
            {
                error = "address contains a control character";
                return false;
            }
        }
        var at = address.LastIndexOf('@');
        if (at <= 0 || at == address.Length - 1)
        {
            error = $"address {address} is not local@domain";
            return false;
        }
        var local = address[..at];
        var domainText = address[(at + 1)..];
        if (local.Length > 64)
        {
            error = "local part longer than 64 octets (RFC 5321 §4.5.3.1.1)";
            return false;
        }
        if (!(local.StartsWith('"') && local.EndsWith('"') && local.Length >= 2) && local.Any(c => c is ' ' or '<' or '>' or '(' or ')' or ',' or ';' or ':' or '\\' or '[' or ']' or '"'))
        {
            error = $"invalid character in local part of {address}";
            return false;
        }
        if (local.StartsWith('.') || local.EndsWith('.') || local.Contains("..", StringComparison.Ordinal))
        {
            if (!local.StartsWith('"'))
            {
                error = $"invalid dot-atom local part in {address}";
                return false;
            }
        }
        if (!NextHop.TryParse(domainText, out var domain, out error))
        {
            return false;
        }
        parsed = new EmailAddress(local, domain);
        return true;
    }

    /// <summary>The address as used in MAIL FROM / RCPT TO: ASCII domain unless SMTPUTF8 is in use.</summary>
    public string ToSmtpString(bool smtpUtf8) => LocalPart + "@" + Domain.ToSmtpString(smtpUtf8);

    public bool Equals(EmailAddress? other) => other is not null && LocalPart == other.LocalPart && Domain.Equals(other.Domain);

    public override bool Equals(object? obj) => obj is EmailAddress other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(LocalPart, Domain);

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
            if (!IPAddress.TryParse(inner, out var ip) || (isV6 != (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)))
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
