using System.Globalization;

namespace CloudDelivery.Addressing;

/// <summary>
/// A DNS domain name in both of its forms: <see cref="Ascii"/> (A-labels, lower case, what goes on the
/// wire and into DNS queries) and <see cref="Unicode"/> (U-labels, what people read). Parsed once at the
/// boundary (RFC 5890); code inside the engine compares and hashes by the ASCII form.
/// </summary>
public sealed class Domain : IEquatable<Domain>
{
    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = true };

    private Domain(string ascii, string unicode)
    {
        Ascii = ascii;
        Unicode = unicode;
    }

    /// <summary>The A-label form, lower case, without a trailing dot.</summary>
    public string Ascii { get; }

    /// <summary>The U-label form, for display.</summary>
    public string Unicode { get; }

    /// <summary>Parses a host or domain name, accepting U-labels and A-labels, with or without a trailing dot.</summary>
    /// <exception cref="FormatException">The name is empty, too long, or not a valid (IDNA) host name.</exception>
    public static Domain Parse(string name)
    {
        if (!TryParse(name, out var domain, out var error))
        {
            throw new FormatException(error);
        }
        return domain;
    }

    /// <summary>Parses like <see cref="Parse"/> without throwing.</summary>
    public static bool TryParse(string? name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Domain? domain, out string error)
    {
        domain = null;
        if (string.IsNullOrWhiteSpace(name))
        {
            error = "empty domain name";
            return false;
        }
        var trimmed = name.EndsWith('.') ? name[..^1] : name;
        if (trimmed.Length == 0 || trimmed.Length > 253)
        {
            error = $"invalid domain name length: {name}";
            return false;
        }
        string ascii;
        try
        {
            ascii = Idn.GetAscii(trimmed).ToLowerInvariant();
        }
        catch (ArgumentException e)
        {
            // Underscores are not valid in host names but do occur in names we look up (_mta-sts, _25._tcp).
            // Those are composed by the engine, never parsed from outside, so rejecting them here is right.
            error = $"invalid domain name {name}: {e.Message}";
            return false;
        }
        string unicode;
        try
        {
            unicode = Idn.GetUnicode(ascii);
        }
        catch (ArgumentException e)
        {
            error = $"invalid domain name {name}: {e.Message}";
            return false;
        }
        foreach (var label in ascii.Split('.'))
        {
            if (label.Length is 0 or > 63)
            {
                error = $"invalid label length in domain name {name}";
                return false;
            }
        }
        domain = new Domain(ascii, unicode);
        error = string.Empty;
        return true;
    }

    /// <summary>The ASCII name with a trailing dot, the form DNS queries use so no search list applies.</summary>
    public string Fqdn => Ascii + ".";

    /// <summary>The name with <paramref name="label"/> prepended, e.g. "_mta-sts" + example.com.</summary>
    public string Prefixed(string label) => label + "." + Ascii;

    public bool Equals(Domain? other) => other is not null && string.Equals(Ascii, other.Ascii, StringComparison.Ordinal);

    public override bool Equals(object? obj) => obj is Domain other && Equals(other);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Ascii);

    public override string ToString() => Ascii;

    public static bool operator ==(Domain? left, Domain? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(Domain? left, Domain? right) => !(left == right);
}
