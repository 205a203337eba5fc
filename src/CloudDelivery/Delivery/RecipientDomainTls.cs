using CloudDelivery.Smtp;
using MailKit.Net.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>How the TLS of a session to a recipient domain's MX host was authenticated.</summary>
public enum TlsVerifiedBy
{
    /// <summary>No TLS, or TLS whose certificate nothing required to verify (opportunistic, RFC 7435).</summary>
    None,

    /// <summary>DANE TLSA records matched (RFC 7672).</summary>
    Dane,

    /// <summary>WebPKI, required by the domain's MTA-STS policy in enforce mode (RFC 8461 §4).</summary>
    MtaSts,
}

/// <summary>
/// What a recipient domain's MX was last seen to support: whether it offered STARTTLS, whether it offered
/// REQUIRETLS over TLS (RFC 8689 §4: the extension only means something once TLS is up), and how TLS was
/// verified. Applications read it before they send, to decide whether asking for REQUIRETLS can succeed.
/// </summary>
/// <param name="StartTls">The server offered STARTTLS (whether or not this session used it).</param>
/// <param name="RequireTls">The server offered REQUIRETLS in its EHLO reply after STARTTLS.</param>
/// <param name="Verified">How TLS was authenticated.</param>
/// <param name="SeenAt">When the session was seen.</param>
public sealed record RecipientDomainTls(bool StartTls, bool RequireTls, TlsVerifiedBy Verified, DateTimeOffset SeenAt)
{
    /// <summary>The lower-case word the HTTP API, <c>status</c> and <c>probe</c> use for <paramref name="verified"/>.</summary>
    public static string Name(TlsVerifiedBy verified) => verified switch
    {
        TlsVerifiedBy.Dane => "dane",
        TlsVerifiedBy.MtaSts => "mta-sts",
        _ => "none",
    };

    /// <summary>The inverse of <see cref="Name"/>; null for anything else.</summary>
    public static TlsVerifiedBy? Parse(string? name) => name switch
    {
        "dane" => TlsVerifiedBy.Dane,
        "mta-sts" => TlsVerifiedBy.MtaSts,
        "none" => TlsVerifiedBy.None,
        _ => null,
    };

    /// <summary>One line in the words of the API's fields, shared by <c>status --domain</c> and <c>probe</c> so an application can compare.</summary>
    public string Describe() => $"startTls {(StartTls ? "yes" : "no")}, requireTls {(RequireTls ? "yes" : "no")}, verified {Name(Verified)}";

    /// <summary>True when the two say the same, whenever they were seen.</summary>
    public bool SameSupport(RecipientDomainTls? other) =>
        other is not null && other.StartTls == StartTls && other.RequireTls == RequireTls && other.Verified == Verified;

    /// <summary>
    /// The summary of an open session. STARTTLS counts as offered when the session runs TLS or the
    /// plaintext EHLO reply listed it (a plaintext retry, or a mode that did not ask for TLS).
    /// </summary>
    /// <param name="session">A session past EHLO (and STARTTLS, where it was done).</param>
    /// <param name="verified">How the session's TLS was verified, as delivery counts it.</param>
    /// <param name="seenAt">Now.</param>
    public static RecipientDomainTls Of(SmtpSession session, TlsVerifiedBy verified, DateTimeOffset seenAt) => new(
        session.IsTls || (session.Capabilities & SmtpCapabilities.StartTLS) != 0,
        session.IsTls && session.SupportsRequireTls,
        session.IsTls ? verified : TlsVerifiedBy.None,
        seenAt);
}
