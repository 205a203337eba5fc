using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Addressing;
using CloudDelivery.Dane;
using CloudDelivery.Dns;
using CloudDelivery.Messages;
using CloudDelivery.MtaSts;

namespace CloudDelivery.Delivery;

/// <summary>What the recipient domain's MTA-STS lookup said, as the TLS decision needs it.</summary>
public enum MtaStsState
{
    /// <summary>No policy, or a policy in mode "none" (RFC 8461 §5).</summary>
    None,

    /// <summary>A policy in mode "testing": failures are reported, never enforced (RFC 8461 §5).</summary>
    Testing,

    /// <summary>A policy in mode "enforce": only matching MX hosts, with WebPKI-verified TLS (RFC 8461 §5).</summary>
    Enforce,

    /// <summary>The lookup failed and no cached policy covers the domain (RFC 8461 §5.1).</summary>
    LookupFailed,
}

/// <summary>The MTA-STS facts for one host: the policy state and whether the host matches its MX patterns.</summary>
/// <param name="State">What the lookup found.</param>
/// <param name="HostMatches">The host matches the policy's "mx" patterns (true without a policy, or for an IP literal).</param>
/// <param name="LookupError">Why the lookup failed, for <see cref="MtaStsState.LookupFailed"/>.</param>
public sealed record MtaStsFacts(MtaStsState State, bool HostMatches = true, string? LookupError = null)
{
    public static readonly MtaStsFacts NoPolicy = new(MtaStsState.None);

    /// <summary>The facts of <paramref name="lookup"/> for <paramref name="host"/> (null: only the domain-wide part).</summary>
    public static MtaStsFacts From(MtaStsLookup? lookup, Domain? host)
    {
        if (lookup?.TemporaryError is { } error)
        {
            return new MtaStsFacts(MtaStsState.LookupFailed, LookupError: error);
        }
        var policy = lookup?.Policy;
        var state = policy?.Mode switch
        {
            MtaStsMode.Enforce => MtaStsState.Enforce,
            MtaStsMode.Testing => MtaStsState.Testing,
            _ => MtaStsState.None,
        };
        // RFC 8461 §4.1: the MX patterns only matter with a policy in force; an IP literal has no name to match.
        var matches = state == MtaStsState.None || host is null || policy!.Matches(host);
        return new MtaStsFacts(state, matches);
    }
}

/// <summary>The four states of a host's TLSA gathering the decision distinguishes (RFC 7672 §2.2).</summary>
public enum TlsaState
{
    /// <summary>No authentic TLSA records (or not looked up): DANE does not apply.</summary>
    None,

    /// <summary>Authentic records, at least one usable for SMTP (RFC 7672 §3.1).</summary>
    Usable,

    /// <summary>Authentic records, none usable: TLS is still mandatory, without authentication (RFC 7672 §2.2).</summary>
    OnlyUnusable,

    /// <summary>The lookup failed at an authentic zone: indistinguishable from an attack (RFC 7672 §2.2).</summary>
    LookupFailed,
}

/// <summary>
/// Everything the TLS decision for one host looks at, gathered by delivery or the probe beforehand: the
/// DNS facts of the destination and the host, the TLSA gathering, the MTA-STS policy, the message's TLS
/// requirement and whether this is the plaintext retry.
/// </summary>
public sealed record TlsPolicyFacts
{
    /// <summary>The host as shown in logs and TLSRPT: its ASCII name or its IP address.</summary>
    public required string HostDisplay { get; init; }

    /// <summary>The host's name; null for an IP literal, which never has DANE.</summary>
    public Domain? HostName { get; init; }

    /// <summary>The recipient domain as given (the original next hop); null for an IP literal.</summary>
    public Domain? RecipientDomain { get; init; }

    /// <summary>The recipient domain after CNAMEs.</summary>
    public Domain? ExpandedRecipientDomain { get; init; }

    /// <summary>There was an MX record; false for the implicit MX (RFC 5321 §5.1).</summary>
    public bool HaveMx { get; init; }

    /// <summary>The answers for the recipient domain as given were DNSSEC-authentic.</summary>
    public bool RecipientDomainAuthentic { get; init; }

    /// <summary>The answers for the CNAME-expanded recipient domain were DNSSEC-authentic.</summary>
    public bool ExpandedRecipientDomainAuthentic { get; init; }

    /// <summary>The host's addresses were found.</summary>
    public bool AddressesFound { get; init; } = true;

    /// <summary>The host's address answers were DNSSEC-authentic.</summary>
    public bool AddressesAuthentic { get; init; }

    /// <summary>The CNAME expansion of the host name was DNSSEC-authentic.</summary>
    public bool HostExpansionAuthentic { get; init; }

    /// <summary>The extended DNS error of a failed address lookup (a DNSSEC failure is reported to TLSRPT).</summary>
    public ExtendedDnsError? AddressLookupError { get; init; }

    /// <summary>The TLSA gathering; null when it was not done (not authentic, or the plaintext retry).</summary>
    public TlsaGathering? Tlsa { get; init; }

    public MtaStsFacts MtaSts { get; init; } = MtaStsFacts.NoPolicy;

    public TlsRequirement Requirement { get; init; }

    /// <summary>The operator's strictest TLS policy entry for this host and the message's sender; null when none applies.</summary>
    public Tls.OperatorTlsMatch? Operator { get; init; }

    /// <summary>This connection is the plaintext retry after a TLS failure (RFC 7435 §6).</summary>
    public bool PlaintextRetry { get; init; }

    /// <summary>Roots trusted for WebPKI besides the system store; carried into the plan unchanged.</summary>
    public X509Certificate2Collection? ExtraTrustRoots { get; init; }

    /// <summary>
    /// DANE applies only when every DNS answer that led to this host was DNSSEC-authentic: the recipient
    /// domain, its CNAME expansion when there was an MX, and the host's addresses (RFC 7672 §2.2). Only then
    /// are TLSA records looked up.
    /// </summary>
    public bool DaneMayApply => AddressesFound && AddressesAuthentic && RecipientDomainAuthentic
        && (!HaveMx || ExpandedRecipientDomainAuthentic) && HostName is not null;

    /// <summary>The state of <see cref="Tlsa"/>.</summary>
    public TlsaState TlsaState => Tlsa switch
    {
        null or { DaneRequired: false } => TlsaState.None,
        { Error: not null } => TlsaState.LookupFailed,
        { Records.Count: > 0 } => TlsaState.Usable,
        _ => TlsaState.OnlyUnusable,
    };

    /// <summary>The facts of one host of <paramref name="destinations"/>, before its TLSA records are known.</summary>
    public static TlsPolicyFacts For(NextHop nextHop, DestinationSet destinations, DeliveryHost host, HostAddresses addresses, MtaStsFacts mtaSts, TlsRequirement requirement) => new()
    {
        HostDisplay = host.Display,
        HostName = host.Name,
        RecipientDomain = nextHop.Name,
        ExpandedRecipientDomain = destinations.ExpandedNextHop ?? nextHop.Name,
        HaveMx = destinations.HaveMx,
        RecipientDomainAuthentic = destinations.OriginalNextHopAuthentic,
        ExpandedRecipientDomainAuthentic = destinations.ExpandedNextHopAuthentic,
        AddressesFound = addresses.Error is null,
        AddressesAuthentic = addresses.Authentic,
        HostExpansionAuthentic = addresses.ExpandedAuthentic,
        AddressLookupError = addresses.Error?.ExtendedError,
        MtaSts = mtaSts,
        Requirement = requirement,
    };

    /// <summary>The names a DANE-TA certificate may carry for this host and TLSA base (RFC 7672 §3.2.2).</summary>
    internal IReadOnlyList<Domain> DaneNamesFor(Domain tlsaBase) => DaneNames.Allowed(
        HaveMx,
        ExpandedRecipientDomainAuthentic,
        HostExpansionAuthentic,
        RecipientDomain ?? HostName!,
        ExpandedRecipientDomain ?? RecipientDomain ?? HostName!,
        HostName!,
        tlsaBase);
}
