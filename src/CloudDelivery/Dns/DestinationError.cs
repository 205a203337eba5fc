namespace CloudDelivery.Dns;

/// <summary>Why destinations or addresses could not be determined.</summary>
public sealed record DestinationError(string Message, bool Permanent, ExtendedDnsError? ExtendedError = null, DestinationFailure Kind = DestinationFailure.LookupFailed);

/// <summary>The kinds of <see cref="DestinationError"/>; the engine chooses the reply by kind.</summary>
public enum DestinationFailure
{
    /// <summary>DNS could not conclude anything: SERVFAIL, a timeout, truncation, DNSSEC bogus, a CNAME loop. Temporary.</summary>
    LookupFailed,

    /// <summary>The domain publishes an unusable MX. Permanent.</summary>
    RefusesMail,

    /// <summary>The domain says it takes no mail: a null MX (RFC 7505 §3). Permanent.</summary>
    NullMx,

    /// <summary>
    /// The recipient domain does not exist: NXDOMAIN for it or for the end of its CNAME chain. Permanent
    /// (5.1.2), as with Postfix: no retry can make a non-existent domain accept mail within days.
    /// </summary>
    NoSuchDomain,

    /// <summary>
    /// A host has no A or AAAA records (NXDOMAIN or NODATA). Temporary for an MX host (the zone may be
    /// mid-edit; Postfix defers too); for the implicit MX it means the domain has neither MX nor address
    /// records, which the engine fails permanently (RFC 5321 §5.1).
    /// </summary>
    NoAddresses,
}
