using System.Net;
using CloudDelivery.Addressing;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Delivery;

/// <summary>What happened to one recipient in a delivery attempt.</summary>
public enum RecipientStatus
{
    /// <summary>The receiving server accepted the message for the recipient.</summary>
    Delivered,

    /// <summary>Not delivered now; worth trying again later.</summary>
    Temporary,

    /// <summary>Will not be delivered; the sender should get a DSN.</summary>
    Permanent,

    /// <summary>
    /// Not attempted now, or refused by a receiver asking us to slow down: traffic shaping holds it back until
    /// <see cref="RecipientResult.RetryAfter"/>. It does not spend the recipient's retry budget.
    /// </summary>
    Deferred,
}

/// <summary>
/// How the connection that decided a recipient's result was protected. Telemetry reports it per recipient,
/// so an operator sees how much mail went with verified TLS.
/// </summary>
public enum TlsPosture
{
    /// <summary>No connection reached MAIL FROM (DNS failure, refused connection, failed TLS handshake).</summary>
    None,

    /// <summary>A transaction without TLS: the plaintext retry, or a server without STARTTLS.</summary>
    Plaintext,

    /// <summary>TLS whose certificate was not required to verify (no policy), or a smarthost's verified TLS.</summary>
    Opportunistic,

    /// <summary>TLS verified by WebPKI because the recipient domain's MTA-STS policy is in enforce mode.</summary>
    MtaSts,

    /// <summary>TLS verified by DANE TLSA records.</summary>
    Dane,
}

/// <summary>
/// Why a result has no reply from a receiving server: the engine decided it before or outside SMTP. Its
/// reply is then synthetic, and telemetry reports this instead of the synthetic status code.
/// </summary>
public enum LocalFailure
{
    /// <summary>The reply came from the server (or names an SMTP-level refusal such as a missing extension).</summary>
    None,

    /// <summary>DNS: the domain, its MX hosts, their addresses or TLSA records could not be resolved.</summary>
    Dns,

    /// <summary>The TCP connection could not be made or broke.</summary>
    Connection,

    /// <summary>Connecting or a command took longer than allowed.</summary>
    Timeout,

    /// <summary>STARTTLS was required but missing, or the TLS handshake or certificate check failed.</summary>
    Tls,

    /// <summary>A TLS policy forbade delivery: MTA-STS lookup failed or MX mismatch, REQUIRETLS unsatisfiable.</summary>
    Policy,
}

/// <summary>The result for one recipient: status, where it was tried, and the reply that decided it.</summary>
/// <param name="MessageId">The queue's id of the message.</param>
/// <param name="Recipient">The recipient address.</param>
/// <param name="Status">Delivered, temporary or permanent failure.</param>
/// <param name="Host">The MX host (or smarthost) that decided it; null when none was reached.</param>
/// <param name="Address">The address dialled, when one was.</param>
/// <param name="Reply">The server's reply, or a synthetic one when the engine decided it.</param>
/// <param name="Tls">How the connection that decided the result was protected.</param>
/// <param name="LocalFailure">Why there is no server reply, when the failure happened outside SMTP.</param>
public sealed record RecipientResult(
    string MessageId,
    EmailAddress Recipient,
    RecipientStatus Status,
    string? Host,
    IPAddress? Address,
    SmtpReply Reply,
    TlsPosture Tls = TlsPosture.None,
    LocalFailure LocalFailure = LocalFailure.None)
{
    /// <summary>For <see cref="RecipientStatus.Deferred"/>: how long traffic shaping holds the recipient back.</summary>
    public TimeSpan? RetryAfter { get; init; }
}

/// <summary>One SMTP connection the attempt made: where, how TLS went, and why it ended if it failed.</summary>
public sealed record ConnectionReport(
    string Host,
    IPAddress Address,
    string? TlsVersion,
    CertificateVerification Verification,
    string? CertificateSubject,
    bool PlaintextRetry,
    string? Error);

/// <summary>A delivery attempt for messages to one recipient domain.</summary>
public sealed class DeliveryRequest
{
    /// <summary>The recipient domain (or IP literal) all recipients share.</summary>
    public required NextHop Destination { get; init; }

    public required IReadOnlyList<OutboundMessage> Messages { get; init; }

    /// <summary>1 for the first attempt. On the first attempt a policy rejection from a dual-stack host is made temporary.</summary>
    public int Attempt { get; init; } = 1;

    /// <summary>
    /// Addresses dialled per host in earlier attempts (key: host name or IP), updated by this attempt. The
    /// caller stores it with the messages so the next attempt prefers the other address family.
    /// </summary>
    public Dictionary<string, List<IPAddress>> DialledAddresses { get; init; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Called with the results of each SMTP transaction as soon as the server has replied, before the
    /// engine does anything else, and once more at the end for results decided without a transaction. A
    /// durable queue records outcomes here, so that a crash after a 250 cannot lead to a second delivery.
    /// </summary>
    public Func<IReadOnlyList<RecipientResult>, CancellationToken, Task>? ResultsReady { get; init; }
}

/// <summary>Everything a delivery attempt produced.</summary>
public sealed class DeliveryOutcome
{
    public required IReadOnlyList<RecipientResult> Recipients { get; init; }

    /// <summary>TLSRPT result for the recipient domain's policy (MTA-STS or none); null when nothing is known.</summary>
    public TlsRptResult? RecipientDomainResult { get; init; }

    /// <summary>TLSRPT results per MX host (DANE or none).</summary>
    public required IReadOnlyList<TlsRptResult> HostResults { get; init; }

    public required IReadOnlyList<ConnectionReport> Connections { get; init; }

    /// <summary>What the recipient domain's MX supports (STARTTLS, REQUIRETLS, verification); null when no session got past EHLO or the smarthost was used.</summary>
    public RecipientDomainTls? DomainTls { get; init; }
}
