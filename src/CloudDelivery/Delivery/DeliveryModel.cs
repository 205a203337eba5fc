using System.Net;
using CloudDelivery.Addressing;
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
}

/// <summary>The result for one recipient: status, where it was tried, and the reply that decided it.</summary>
public sealed record RecipientResult(
    string MessageId,
    EmailAddress Recipient,
    RecipientStatus Status,
    string? Host,
    IPAddress? Address,
    SmtpReply Reply);

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
}
