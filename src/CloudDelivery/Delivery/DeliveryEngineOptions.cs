using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Dialing;
using CloudDelivery.Shaping;
using CloudDelivery.Tls;

namespace CloudDelivery.Delivery;

/// <summary>Settings of direct delivery.</summary>
public sealed class DeliveryEngineOptions
{
    /// <summary>Our host name for EHLO. Receivers check it against our IP's reverse DNS.</summary>
    public required string EhloHostname { get; init; }

    /// <summary>The SMTP port of MX hosts: 25 (RFC 5321 §4.5.4.2); other values are for tests.</summary>
    public int SmtpPort { get; init; } = 25;

    /// <summary>Which addresses may be dialled; by default private, loopback and metadata addresses are refused.</summary>
    public AddressPolicy AddressPolicy { get; init; } = AddressPolicy.PublicOnly;

    /// <summary>Roots trusted for WebPKI in addition to the system store.</summary>
    public X509Certificate2Collection? ExtraTrustRoots { get; init; }

    /// <summary>Time allowed for one TCP connect.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Deadline for each complete SMTP reply, the greeting included: from our last write (or the previous
    /// reply) to the final line of the reply, so a peer sending a byte at a time cannot stretch it; while
    /// the message is sent, each write must complete within it. RFC 5321 §4.5.3.2 suggests minutes.
    /// </summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Deadline for one SMTP connection from greeting to QUIT, over all its transactions. Per connection,
    /// not per host attempt: a plaintext retry or a parallel session has its own.
    /// </summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Sessions opened in parallel to one MX host when a delivery has many messages for it (see
    /// <see cref="DeliveryEngine.MessagesPerExtraSession"/>); 1 sends everything over one connection.
    /// </summary>
    public int MaxSessionsPerHost { get; init; } = 4;

    /// <summary>How failing replies are classified (throttling among them).</summary>
    public BounceClassifier Classifier { get; init; } = BounceClassifier.Default;

    /// <summary>Per-destination connection and rate budgets.</summary>
    public TrafficShapingRules Shaping { get; init; } = TrafficShapingRules.Default;

    /// <summary>The operator's TLS floors per destination and sender domain.</summary>
    public OperatorTlsPolicies TlsPolicies { get; init; } = OperatorTlsPolicies.None;
}
