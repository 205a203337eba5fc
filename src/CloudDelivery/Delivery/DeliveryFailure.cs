using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>
/// Why recipients were not delivered. Each kind fixes, in <see cref="DeliveryFailure"/>, the reply recorded
/// for its recipients (code and enhanced status code, RFC 3463), whether it is permanent, which
/// <see cref="LocalFailure"/> telemetry reports, and whether the connection's TLS posture applies.
/// </summary>
public enum DeliveryFailureKind
{
    /// <summary>Nothing was tried for the recipient: 451 4.4.0 (RFC 3463 §3.5, X.4.0 other network or routing status).</summary>
    NotAttempted,

    /// <summary>
    /// Traffic shaping held the recipient back (rate, connections, or a pause after a receiver throttled us):
    /// 451 4.4.5 (RFC 3463 §3.5, X.4.5 mail system congestion); reported Deferred, no attempt spent.
    /// </summary>
    HeldByTrafficShaping,

    /// <summary>The recipient domain could not be resolved for now: 451 4.4.3 (RFC 3463 §3.5, X.4.3 directory server failure).</summary>
    DestinationTemporary,

    /// <summary>The recipient domain does not exist: 550 5.1.2 (RFC 3463 §3.2, X.1.2 bad destination system address).</summary>
    NoSuchDomain,

    /// <summary>The domain publishes an unusable MX: 550 5.1.10 (RFC 7505 §4.2, X.1.10 recipient address has null MX).</summary>
    DestinationPermanent,

    /// <summary>The domain publishes a null MX (RFC 7505 §3): 550 5.1.10 (RFC 7505 §4.2).</summary>
    NullMx,

    /// <summary>The domain has neither MX nor address records (RFC 5321 §5.1): 550 5.1.2 (RFC 3463 §3.2).</summary>
    NoMxOrAddress,

    /// <summary>The MTA-STS policy could not be fetched (RFC 8461 §5.1): 451 4.7.5 (RFC 3463 §3.8, X.7.5 cryptographic failure).</summary>
    MtaStsUnavailable,

    /// <summary>The MX host is not in the enforced MTA-STS policy (RFC 8461 §4.1): 451 4.7.5 (RFC 3463 §3.8).</summary>
    MxNotInPolicy,

    /// <summary>
    /// This host cannot carry REQUIRETLS: no DANE, no enforced MTA-STS (RFC 8689 §4.2.1). 554 5.7.30
    /// (RFC 8689 §6), yet temporary: another host of the domain may do.
    /// </summary>
    RequireTlsUnsatisfiableHost,

    /// <summary>No host of the domain can carry REQUIRETLS: 554 5.7.30, permanent (RFC 8689 §4.2.1, §6).</summary>
    RequireTlsUnsatisfiableDomain,

    /// <summary>The server does not offer REQUIRETLS over TLS: 554 5.7.30 (RFC 8689 §6), temporary per host.</summary>
    RequireTlsUnsupportedByServer,

    /// <summary>The MX host's addresses or TLSA records could not be resolved: 451 4.4.4 (RFC 3463 §3.5, X.4.4 unable to route).</summary>
    HostDnsFailed,

    /// <summary>The MX host resolved to no address: 451 4.4.1 (RFC 3463 §3.5, X.4.1 no answer from host).</summary>
    HostHasNoAddresses,

    /// <summary>TCP connect failed: 451 4.4.1 (RFC 3463 §3.5).</summary>
    DialFailed,

    /// <summary>Every address was refused by the address policy: 451 4.4.1 (RFC 3463 §3.5).</summary>
    DialRefusedByPolicy,

    /// <summary>TCP connect took too long: 451 4.4.1 (RFC 3463 §3.5).</summary>
    ConnectTimeout,

    /// <summary>The session ended with recipients left: 451 4.4.2 (RFC 3463 §3.5, X.4.2 bad connection).</summary>
    ConnectionLost,

    /// <summary>The session broke without a reply; recorded with code 0 (no server reply).</summary>
    SessionBroken,

    /// <summary>An operation of the session took too long; code 0 (no server reply).</summary>
    SessionTimedOut,

    /// <summary>The peer let a reply or session deadline pass: code 0, 4.4.2 (RFC 3463 §3.5).</summary>
    PeerMissedDeadline,

    /// <summary>The peer overstepped a size cap: code 0, 4.4.2 (RFC 3463 §3.5).</summary>
    PeerOversteppedLimit,

    /// <summary>STARTTLS missing where required, or the handshake or certificate check failed; code 0.</summary>
    TlsFailed,

    /// <summary>The server refused STARTTLS; its own reply is kept.</summary>
    StartTlsRefused,

    /// <summary>The server refused the session at greeting or EHLO (RFC 5321 §3.1); its own reply is kept.</summary>
    ServerRefused,

    /// <summary>The server refused MAIL FROM or DATA; its own reply is kept.</summary>
    ServerReply,

    /// <summary>The server lacks SMTPUTF8 (RFC 6531 §3.2): 554 5.6.7 (X.6.7, registered by RFC 6531), temporary like mox.</summary>
    SmtpUtf8Unsupported,

    /// <summary>The message exceeds the server's SIZE (RFC 1870 §6.1): 552 5.3.4 (RFC 3463 §3.4, X.3.4 message too big).</summary>
    MessageTooLarge,

    /// <summary>The smarthost's name could not be resolved: 451 4.4.3 (RFC 3463 §3.5).</summary>
    SmarthostDnsFailed,

    /// <summary>No connection to the smarthost: 451 4.4.1 (RFC 3463 §3.5).</summary>
    SmarthostDialFailed,

    /// <summary>Connecting to the smarthost took too long: 451 4.4.1 (RFC 3463 §3.5).</summary>
    SmarthostConnectTimeout,

    /// <summary>The smarthost session ended with recipients left: 451 4.4.2 (RFC 3463 §3.5).</summary>
    SmarthostConnectionLost,

    /// <summary>The smarthost refused our login: 451 4.7.0 (RFC 3463 §3.8, X.7.0 other security status).</summary>
    SmarthostLoginFailed,

    /// <summary>MAIL FROM cannot carry the sender: 550 5.1.7 (RFC 3463 §3.2, X.1.7 bad sender's mailbox syntax).</summary>
    UnencodableSender,

    /// <summary>RCPT TO cannot carry the recipient: 550 5.1.3 (RFC 3463 §3.2, X.1.3 bad destination mailbox syntax).</summary>
    UnencodableRecipient,
}

/// <summary>
/// A named delivery failure: its kind, the reply recorded for its recipients, whether it is permanent, and
/// how the connection was protected when it happened. Kinds made up by the engine take their codes from
/// the table below; kinds carrying a server's refusal keep the server's reply.
/// </summary>
public sealed record DeliveryFailure
{
    private DeliveryFailure(DeliveryFailureKind kind, SmtpReply reply, bool permanent)
    {
        Kind = kind;
        Reply = reply;
        Permanent = permanent;
    }

    public DeliveryFailureKind Kind { get; }

    /// <summary>The reply recorded for the recipients: the server's own, or a synthetic one.</summary>
    public SmtpReply Reply { get; }

    public bool Permanent { get; init; }

    /// <summary>How the session was protected; <see cref="TlsPosture.None"/> unless the failure happened in a session that reached MAIL FROM.</summary>
    public TlsPosture Tls { get; init; }

    /// <summary>Telemetry's reason: what failed outside SMTP, if anything.</summary>
    public LocalFailure Local => LocalFailureOf(Kind);

    /// <summary>STARTTLS or the handshake failed: a plaintext retry may be allowed (RFC 7435 §6).</summary>
    public bool IsTlsFailure => Kind is DeliveryFailureKind.TlsFailed or DeliveryFailureKind.StartTlsRefused;

    /// <summary>The host refused the session itself: about the host (perhaps our address), not the mail.</summary>
    public bool HostRefused => Kind == DeliveryFailureKind.ServerRefused;

    /// <summary>
    /// The failure says REQUIRETLS cannot be met here: ours, or a server's own X.7.30 answer, which RFC 8689
    /// §6 registers for exactly that.
    /// </summary>
    public bool LeavesRequireTlsUnmet => Kind is DeliveryFailureKind.RequireTlsUnsatisfiableHost or DeliveryFailureKind.RequireTlsUnsatisfiableDomain or DeliveryFailureKind.RequireTlsUnsupportedByServer
        || (CarriesServerReply(Kind) && Reply.EnhancedCode == "5.7.30");

    /// <summary>The status its recipients get.</summary>
    public RecipientStatus Status => Permanent ? RecipientStatus.Permanent : RecipientStatus.Temporary;

    /// <summary>A failure the engine decided: the kind's code with <paramref name="text"/>.</summary>
    public static DeliveryFailure Of(DeliveryFailureKind kind, string text)
    {
        if (CarriesServerReply(kind))
        {
            throw new ArgumentException($"{kind} carries the server's reply", nameof(kind));
        }
        var (code, enhanced, permanent) = Synthetic(kind);
        return new DeliveryFailure(kind, new SmtpReply(code, enhanced, text), permanent);
    }

    /// <summary>A refusal by the server: its reply, permanent when it is 5xx.</summary>
    public static DeliveryFailure Refusal(DeliveryFailureKind kind, SmtpReply reply)
    {
        if (!CarriesServerReply(kind))
        {
            throw new ArgumentException($"{kind} has a reply of its own", nameof(kind));
        }
        return new DeliveryFailure(kind, reply, reply.IsPermanent);
    }

    /// <summary>The failure a session reported.</summary>
    public static DeliveryFailure FromSession(SmtpSessionException e)
    {
        var kind = e.Failure switch
        {
            SmtpSessionFailure.StartTlsNotOffered or SmtpSessionFailure.TlsHandshakeFailed => DeliveryFailureKind.TlsFailed,
            SmtpSessionFailure.StartTlsRefused => DeliveryFailureKind.StartTlsRefused,
            SmtpSessionFailure.SessionRefused => DeliveryFailureKind.ServerRefused,
            SmtpSessionFailure.CommandRefused => DeliveryFailureKind.ServerReply,
            SmtpSessionFailure.ConnectionFailed => DeliveryFailureKind.SessionBroken,
            SmtpSessionFailure.ConnectionTimedOut => DeliveryFailureKind.SessionTimedOut,
            SmtpSessionFailure.DeadlineOverstepped => DeliveryFailureKind.PeerMissedDeadline,
            SmtpSessionFailure.LimitOverstepped => DeliveryFailureKind.PeerOversteppedLimit,
            SmtpSessionFailure.SmtpUtf8Unsupported => DeliveryFailureKind.SmtpUtf8Unsupported,
            SmtpSessionFailure.RequireTlsUnsupported => DeliveryFailureKind.RequireTlsUnsupportedByServer,
            SmtpSessionFailure.MessageTooLarge => DeliveryFailureKind.MessageTooLarge,
            SmtpSessionFailure.LoginFailed => DeliveryFailureKind.SmarthostLoginFailed,
            _ => throw new ArgumentOutOfRangeException(nameof(e), e.Failure, "unknown session failure"),
        };
        return e.ServerReply is { } reply ? Refusal(kind, reply) : Of(kind, e.Detail);
    }

    /// <summary>
    /// mox's rule for dual-stack hosts: a policy rejection (5.7.x) on the first attempt may be a block of
    /// the address we came from, so it becomes temporary and the next attempt uses the other family.
    /// </summary>
    public DeliveryFailure ForAttempt(int attempt, bool dualStack) =>
        IsFirstDualStackPolicyRejection(Reply, Permanent, attempt, dualStack) ? this with { Permanent = false } : this;

    /// <summary>The rule of <see cref="ForAttempt"/> for a single recipient's reply.</summary>
    public static bool IsFirstDualStackPolicyRejection(SmtpReply reply, bool permanent, int attempt, bool dualStack) =>
        permanent && attempt == 1 && dualStack && reply.EnhancedCode?.StartsWith("5.7.", StringComparison.Ordinal) == true;

    /// <summary>Whether the kind keeps the server's reply instead of making one up.</summary>
    public static bool CarriesServerReply(DeliveryFailureKind kind) =>
        kind is DeliveryFailureKind.StartTlsRefused or DeliveryFailureKind.ServerRefused or DeliveryFailureKind.ServerReply;

    /// <summary>The code, enhanced status code and permanence of each kind the engine makes up (citations on the kinds).</summary>
    private static (int Code, string? Enhanced, bool Permanent) Synthetic(DeliveryFailureKind kind) => kind switch
    {
        DeliveryFailureKind.NotAttempted => (451, "4.4.0", false),
        DeliveryFailureKind.HeldByTrafficShaping => (451, "4.4.5", false),
        DeliveryFailureKind.DestinationTemporary => (451, "4.4.3", false),
        DeliveryFailureKind.NoSuchDomain => (550, "5.1.2", true),
        DeliveryFailureKind.DestinationPermanent or DeliveryFailureKind.NullMx => (550, "5.1.10", true),
        DeliveryFailureKind.NoMxOrAddress => (550, "5.1.2", true),
        DeliveryFailureKind.MtaStsUnavailable or DeliveryFailureKind.MxNotInPolicy => (451, "4.7.5", false),
        DeliveryFailureKind.RequireTlsUnsatisfiableHost or DeliveryFailureKind.RequireTlsUnsupportedByServer => (554, "5.7.30", false),
        DeliveryFailureKind.RequireTlsUnsatisfiableDomain => (554, "5.7.30", true),
        DeliveryFailureKind.HostDnsFailed => (451, "4.4.4", false),
        DeliveryFailureKind.HostHasNoAddresses or DeliveryFailureKind.DialFailed or DeliveryFailureKind.DialRefusedByPolicy or DeliveryFailureKind.ConnectTimeout => (451, "4.4.1", false),
        DeliveryFailureKind.ConnectionLost or DeliveryFailureKind.SmarthostConnectionLost => (451, "4.4.2", false),
        DeliveryFailureKind.SessionBroken or DeliveryFailureKind.SessionTimedOut or DeliveryFailureKind.TlsFailed => (0, null, false),
        DeliveryFailureKind.PeerMissedDeadline or DeliveryFailureKind.PeerOversteppedLimit => (0, "4.4.2", false),
        DeliveryFailureKind.SmtpUtf8Unsupported => (554, "5.6.7", false),
        DeliveryFailureKind.MessageTooLarge => (552, "5.3.4", true),
        DeliveryFailureKind.SmarthostDnsFailed => (451, "4.4.3", false),
        DeliveryFailureKind.SmarthostDialFailed or DeliveryFailureKind.SmarthostConnectTimeout => (451, "4.4.1", false),
        DeliveryFailureKind.SmarthostLoginFailed => (451, "4.7.0", false),
        DeliveryFailureKind.UnencodableSender => (550, "5.1.7", true),
        DeliveryFailureKind.UnencodableRecipient => (550, "5.1.3", true),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "kind carries the server's reply"),
    };

    /// <summary>Telemetry's reason for each kind: a server's reply (or an SMTP-level refusal) is <see cref="LocalFailure.None"/>.</summary>
    public static LocalFailure LocalFailureOf(DeliveryFailureKind kind) => kind switch
    {
        DeliveryFailureKind.DestinationTemporary or DeliveryFailureKind.NoSuchDomain or DeliveryFailureKind.DestinationPermanent
            or DeliveryFailureKind.NullMx or DeliveryFailureKind.NoMxOrAddress or DeliveryFailureKind.HostDnsFailed
            or DeliveryFailureKind.HostHasNoAddresses or DeliveryFailureKind.SmarthostDnsFailed => LocalFailure.Dns,
        DeliveryFailureKind.MtaStsUnavailable or DeliveryFailureKind.MxNotInPolicy or DeliveryFailureKind.RequireTlsUnsatisfiableHost
            or DeliveryFailureKind.RequireTlsUnsatisfiableDomain or DeliveryFailureKind.DialRefusedByPolicy => LocalFailure.Policy,
        DeliveryFailureKind.DialFailed or DeliveryFailureKind.ConnectionLost or DeliveryFailureKind.SessionBroken
            or DeliveryFailureKind.PeerOversteppedLimit or DeliveryFailureKind.SmarthostDialFailed or DeliveryFailureKind.SmarthostConnectionLost => LocalFailure.Connection,
        DeliveryFailureKind.ConnectTimeout or DeliveryFailureKind.SessionTimedOut or DeliveryFailureKind.PeerMissedDeadline
            or DeliveryFailureKind.SmarthostConnectTimeout => LocalFailure.Timeout,
        DeliveryFailureKind.TlsFailed => LocalFailure.Tls,
        _ => LocalFailure.None,
    };
}
