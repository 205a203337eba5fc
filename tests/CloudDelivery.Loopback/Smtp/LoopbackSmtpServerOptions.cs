using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace CloudDelivery.Loopback.Smtp;

/// <summary>A reply the test server gives: code, enhanced status code (RFC 3463) and text.</summary>
public sealed record SmtpServerReply(int Code, string EnhancedCode, string Text)
{
    internal string Format(bool last = true) => $"{Code}{(last ? ' ' : '-')}{(EnhancedCode.Length > 0 ? EnhancedCode + " " : string.Empty)}{Text}\r\n";
}

/// <summary>Where the server stops answering, to simulate a stalled peer.</summary>
public enum SmtpStall
{
    None,
    BeforeGreeting,
    AfterEhlo,
    AfterRcpt,
    AfterData,
}

/// <summary>
/// Ways the server misbehaves as a hostile or broken peer would, each aimed at one bound of the client
/// (a deadline per reply, a cap on a reply line or a whole reply, the host-level meaning of a refused greeting).
/// </summary>
public enum SmtpHostility
{
    None,

    /// <summary>Waits <see cref="LoopbackSmtpServerOptions.HostileInterval"/> before every reply (the greeting too) and answers MAIL with 421.</summary>
    Tarpit,

    /// <summary>Sends every reply one byte per <see cref="LoopbackSmtpServerOptions.HostileInterval"/>.</summary>
    Drip,

    /// <summary>Answers EHLO with "250-x" lines that never end.</summary>
    EndlessEhloReply,

    /// <summary>Greets with one line of 10 MB without CRLF, then waits.</summary>
    HugeGreetingLine,

    /// <summary>Greets with 554 and answers anything but QUIT with 503, as RFC 5321 §3.1 asks of such a server.</summary>
    Greeting554,

    /// <summary>Greets with 421 and closes the connection (RFC 5321 §3.8).</summary>
    Greeting421,

    /// <summary>Accepts STARTTLS, then sends plain text instead of a TLS handshake and waits.</summary>
    GarbageAfterStartTls,

    /// <summary>Answers DATA with 354 and then never reads again, so the client's writes block.</summary>
    NeverReadData,
}

/// <summary>Where a throttling server (<see cref="SmtpThrottle"/>) refuses once its budget is spent.</summary>
public enum SmtpThrottleStage
{
    /// <summary>Greets with the reply instead of 220 and closes (a 421 greeting, RFC 5321 §3.8).</summary>
    Connect,

    /// <summary>Answers MAIL FROM with the reply.</summary>
    Mail,

    /// <summary>Answers every RCPT TO with the reply.</summary>
    Rcpt,

    /// <summary>Answers the end of DATA with the reply.</summary>
    Data,
}

/// <summary>
/// A receiver that throttles, as the big ones do: after <paramref name="MessagesPerWindow"/> accepted
/// messages in a fixed window of <paramref name="Window"/> (on <paramref name="Clock"/>, the system clock when
/// null), it answers <paramref name="Stage"/> with <paramref name="Reply"/> — e.g. Gmail's exact 421 4.7.28 or
/// 450 4.2.1 text — until the window ends. A 421 closes the connection, as RFC 5321 §3.8 has it.
/// </summary>
public sealed record SmtpThrottle(int MessagesPerWindow, SmtpServerReply Reply, SmtpThrottleStage Stage, TimeSpan Window, TimeProvider? Clock = null);

/// <summary>A MAIL command as the server saw it.</summary>
public sealed record SmtpMailContext(int ConnectionNumber, string MailFrom, IReadOnlyList<string> Parameters, bool IsTls);

/// <summary>A RCPT command: <see cref="RecipientIndex"/> counts RCPT commands of the transaction from 0.</summary>
public sealed record SmtpRcptContext(int ConnectionNumber, int TransactionNumber, string Recipient, int RecipientIndex, bool IsTls);

/// <summary>A completed DATA: the accepted recipients and the message size.</summary>
public sealed record SmtpDataContext(int ConnectionNumber, int TransactionNumber, IReadOnlyList<string> Recipients, long Size, bool IsTls);

/// <summary>A message the server accepted.</summary>
public sealed record ReceivedSmtpMessage(
    string MailFrom,
    IReadOnlyList<string> MailParameters,
    IReadOnlyList<string> Recipients,
    byte[] Data,
    bool Tls,
    SslProtocols TlsProtocol,
    int ConnectionNumber,
    int TransactionNumber);

/// <summary>How a <see cref="LoopbackSmtpServer"/> behaves.</summary>
public sealed class LoopbackSmtpServerOptions
{
    /// <summary>Address to listen on; tests give each MX host its own 127.x.y.z (or ::1).</summary>
    public IPAddress Address { get; set; } = IPAddress.Loopback;

    /// <summary>Port; 0 picks a free one.</summary>
    public int Port { get; set; }

    /// <summary>Name in the greeting and EHLO reply.</summary>
    public string Hostname { get; set; } = "mx.loopback.test";

    /// <summary>Certificate for STARTTLS; null means no STARTTLS.</summary>
    public X509Certificate2? Certificate { get; set; }

    /// <summary>Further certificates sent in the TLS handshake (intermediates, or the root for DANE-TA).</summary>
    public X509Certificate2Collection? CertificateChain { get; set; }

    public bool AdvertiseStartTls { get; set; } = true;

    /// <summary>Advertise REQUIRETLS (RFC 8689), after STARTTLS only.</summary>
    public bool AdvertiseRequireTls { get; set; }

    /// <summary>Advertise and enforce LIMITS RCPTMAX (RFC 9422).</summary>
    public int? RcptMax { get; set; }

    public bool Pipelining { get; set; } = true;

    public bool EightBitMime { get; set; } = true;

    public bool SmtpUtf8 { get; set; } = true;

    /// <summary>Advertise and enforce SIZE (RFC 1870).</summary>
    public long? MaxSize { get; set; }

    /// <summary>Keep message bytes (false: count only, for the benchmark sink).</summary>
    public bool KeepMessages { get; set; } = true;

    /// <summary>Decides a RCPT reply; null from the function means 250.</summary>
    public Func<SmtpRcptContext, SmtpServerReply?>? OnRcpt { get; set; }

    /// <summary>Decides a MAIL reply; null means 250.</summary>
    public Func<SmtpMailContext, SmtpServerReply?>? OnMail { get; set; }

    /// <summary>Decides the reply after DATA; null means 250.</summary>
    public Func<SmtpDataContext, SmtpServerReply?>? OnDataEnd { get; set; }

    /// <summary>Reply to STARTTLS instead of 220, e.g. 454 to refuse it.</summary>
    public SmtpServerReply? StartTlsReply { get; set; }

    public SmtpStall Stall { get; set; }

    /// <summary>How the server misbehaves; <see cref="SmtpHostility.None"/> for a well-behaved server.</summary>
    public SmtpHostility Hostility { get; set; }

    /// <summary>The pace of <see cref="SmtpHostility.Tarpit"/> (delay per reply) and <see cref="SmtpHostility.Drip"/> (delay per byte).</summary>
    public TimeSpan HostileInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the reply to the end of DATA takes, as at a big receiver that scans every message before it
    /// answers (and across a real network's round trip); zero answers at once.
    /// </summary>
    public TimeSpan DataReplyLatency { get; set; }

    /// <summary>
    /// Connections open at once beyond which a new one is greeted with 421 and closed, as receivers that
    /// limit connections per client do (RFC 5321 §3.8). Null: no limit.
    /// </summary>
    public int? MaxConcurrentConnections { get; set; }

    /// <summary>
    /// Connections from this number on (1-based) get no greeting at all, as a host that tarpits further
    /// connections from one client. Null: every connection is greeted.
    /// </summary>
    public int? StallGreetingFromConnection { get; set; }

    /// <summary>
    /// When set, the server is a submission server: it offers AUTH PLAIN (RFC 4954) after STARTTLS and
    /// refuses MAIL before a successful login with these credentials.
    /// </summary>
    public (string User, string Password)? Credentials { get; set; }

    /// <summary>Throttle after so many messages per window; null: never throttle.</summary>
    public SmtpThrottle? Throttle { get; set; }
}
