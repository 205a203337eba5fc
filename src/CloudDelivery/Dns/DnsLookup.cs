namespace CloudDelivery.Dns;

/// <summary>How a DNS lookup ended.</summary>
public enum DnsLookupStatus
{
    /// <summary>The name has records of the asked type.</summary>
    Found,

    /// <summary>NXDOMAIN, or the name exists without records of this type (NODATA).</summary>
    NotFound,

    /// <summary>SERVFAIL, REFUSED, a malformed answer, a timeout: nothing can be concluded.</summary>
    Failed,
}

/// <summary>
/// An RFC 8914 extended DNS error, as a validating resolver attaches to a SERVFAIL for a bogus name.
/// </summary>
/// <param name="InfoCode">The INFO-CODE, e.g. 6 for "DNSSEC Bogus".</param>
/// <param name="ExtraText">The resolver's EXTRA-TEXT, possibly empty.</param>
public sealed record ExtendedDnsError(int InfoCode, string ExtraText)
{
    // RFC 8914 §5.2 registry names, in INFO-CODE order.
    private static readonly string[] Names =
    [
        "Other", "Unsupported DNSKEY Algorithm", "Unsupported DS Digest Type", "Stale Answer", "Forged Answer",
        "DNSSEC Indeterminate", "DNSSEC Bogus", "Signature Expired", "Signature Not Yet Valid", "DNSKEY Missing",
        "RRSIGs Missing", "No Zone Key Bit Set", "NSEC Missing", "Cached Error", "Not Ready", "Blocked", "Censored",
        "Filtered", "Prohibited", "Stale NXDOMAIN Answer", "Not Authoritative", "Not Supported",
        "No Reachable Authority", "Network Error", "Invalid Data",
    ];

    /// <summary>The registry name of the code ("DNSSEC Bogus"), or "Unknown" for unassigned codes.</summary>
    public string Name => InfoCode >= 0 && InfoCode < Names.Length ? Names[InfoCode] : "Unknown";

    /// <summary>
    /// True for codes that mean DNSSEC validation failed (RFC 8914 codes 1, 2 and 5–12). Such failures are
    /// reported in TLSRPT (RFC 8460 §4.3.2) rather than treated as an ordinary lookup error.
    /// </summary>
    public bool IsAuthenticationFailure => InfoCode is 1 or 2 or (>= 5 and <= 12);

    /// <summary>The TLSRPT failure reason code mox uses for this error, e.g. "dns-extended-error-6-DNSSEC-Bogus".</summary>
    public string TlsRptReasonCode => $"dns-extended-error-{InfoCode}-{Name.Replace(' ', '-')}";

    public override string ToString() => ExtraText.Length > 0 ? $"{InfoCode} ({Name}): {ExtraText}" : $"{InfoCode} ({Name})";
}

/// <summary>
/// The answer to one DNS question: the records, whether the resolver vouched for them with DNSSEC (the AD
/// bit, RFC 4035 §3.2.3), and, when the lookup failed, why.
/// </summary>
public sealed class DnsLookup<T>
{
    public DnsLookup(DnsLookupStatus status, IReadOnlyList<T> records, bool authentic, string? error = null, ExtendedDnsError? extendedError = null, bool nameDoesNotExist = false)
    {
        Status = status;
        NameDoesNotExist = nameDoesNotExist;
        Records = records;
        Authentic = authentic;
        Error = error;
        ExtendedError = extendedError;
    }

    public DnsLookupStatus Status { get; }

    /// <summary>Records of the asked type; empty unless <see cref="Status"/> is Found.</summary>
    public IReadOnlyList<T> Records { get; }

    /// <summary>True when the resolver set the AD bit: the answer (or the denial) was DNSSEC-validated.</summary>
    public bool Authentic { get; }

    /// <summary>A readable reason for a failed lookup.</summary>
    public string? Error { get; }

    /// <summary>The extended DNS error the resolver attached, if any.</summary>
    public ExtendedDnsError? ExtendedError { get; }

    public bool Found => Status == DnsLookupStatus.Found;

    public bool NotFound => Status == DnsLookupStatus.NotFound;

    /// <summary>
    /// NotFound because the name itself does not exist (NXDOMAIN, RFC 1035 §4.1.1; after CNAMEs, for the
    /// last name of the chain, RFC 6604 §2), not merely lacking records of the asked type (NODATA).
    /// </summary>
    public bool NameDoesNotExist { get; }

    public bool Failed => Status == DnsLookupStatus.Failed;

    /// <summary>The failure as an exception, for callers that give up on it.</summary>
    public DnsLookupException ToException(string name) => new(name, Error ?? Status.ToString(), ExtendedError);
}

/// <summary>A DNS lookup failed in a way the caller cannot work around (SERVFAIL, timeout, bogus).</summary>
public sealed class DnsLookupException : Exception
{
    public DnsLookupException(string name, string reason, ExtendedDnsError? extendedError)
        : base($"dns lookup for {name}: {reason}" + (extendedError is null ? string.Empty : $" (extended error {extendedError})"))
    {
        Name = name;
        ExtendedError = extendedError;
    }

    public string Name { get; }

    public ExtendedDnsError? ExtendedError { get; }
}

/// <summary>An MX record: preference and exchange host name (RFC 5321 §5.1).</summary>
public sealed record MxRecord(int Preference, string Exchange);

/// <summary>A TLSA record (RFC 6698 §2.1).</summary>
public sealed record TlsaRecord(byte Usage, byte Selector, byte MatchingType, byte[] Data)
{
    public override string ToString() => $"{Usage} {Selector} {MatchingType} {Convert.ToHexString(Data).ToLowerInvariant()}";
}
