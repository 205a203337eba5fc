using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Addressing;
using CloudDelivery.Dns;
using CloudDelivery.Messages;
using CloudDelivery.TlsRpt;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace CloudDelivery.Smtp;

/// <summary>How a connection uses STARTTLS (RFC 3207).</summary>
public enum TlsMode
{
    /// <summary>Use STARTTLS when the server offers it, without requiring a verified certificate (RFC 7435).</summary>
    Opportunistic,

    /// <summary>STARTTLS is required: a server without it, or a failed handshake, ends the attempt.</summary>
    RequiredStartTls,

    /// <summary>No TLS: the plaintext retry after a TLS failure when nothing requires TLS.</summary>
    Skip,
}

/// <summary>How the server's certificate was verified on a connection, as reported by the CLI.</summary>
public enum CertificateVerification
{
    /// <summary>No TLS.</summary>
    None,

    /// <summary>TLS without a verified certificate (opportunistic, or DANE with only unusable records).</summary>
    Unverified,

    /// <summary>WebPKI: a trusted chain and the MX host name.</summary>
    Pkix,

    /// <summary>DANE-EE (TLSA usage 3): the certificate or key itself is pinned in DNS.</summary>
    DaneEe,

    /// <summary>DANE-TA (TLSA usage 2): the chain leads to a trust anchor pinned in DNS.</summary>
    DaneTa,
}

/// <summary>
/// What the engine decided about certificate checks for one connection: the one place TLS policy is
/// turned into checks (DANE records, WebPKI for MTA-STS, whether failures are ignored).
/// </summary>
public sealed class TlsVerificationPlan
{
    /// <summary>Usable TLSA records; null when DANE does not apply; empty when TLS is required but unverifiable.</summary>
    public IReadOnlyList<TlsaRecord>? DaneRecords { get; init; }

    /// <summary>Names a DANE-TA certificate may carry (RFC 7672 §3.2.2).</summary>
    public IReadOnlyList<string> DaneAllowedNames { get; init; } = [];

    /// <summary>WebPKI verification must pass (an enforced MTA-STS policy, RFC 8461 §4.2).</summary>
    public bool RequirePkix { get; init; }

    /// <summary>Names (or ".suffix" patterns) WebPKI accepts instead of the host name: the operator's verify match=; empty for the host name.</summary>
    public IReadOnlyList<string> PkixAllowedNames { get; init; } = [];

    /// <summary>Verification failures are reported but do not end the connection (TLS-Required: No).</summary>
    public bool IgnoreVerificationErrors { get; init; }

    /// <summary>Roots trusted in addition to the system store.</summary>
    public X509Certificate2Collection? ExtraTrustRoots { get; init; }

    /// <summary>This plan with verification failures ending the connection.</summary>
    public TlsVerificationPlan WithErrorsEnforced() => new()
    {
        DaneRecords = DaneRecords,
        DaneAllowedNames = DaneAllowedNames,
        RequirePkix = RequirePkix,
        PkixAllowedNames = PkixAllowedNames,
        IgnoreVerificationErrors = false,
        ExtraTrustRoots = ExtraTrustRoots,
    };

    /// <summary>This plan with WebPKI required and enforced, for <paramref name="allowedNames"/> (empty: the host name).</summary>
    public TlsVerificationPlan WithPkixRequired(IReadOnlyList<string> allowedNames) => new()
    {
        DaneRecords = DaneRecords,
        DaneAllowedNames = DaneAllowedNames,
        RequirePkix = true,
        PkixAllowedNames = allowedNames,
        IgnoreVerificationErrors = false,
        ExtraTrustRoots = ExtraTrustRoots,
    };
}

/// <summary>The outcome of one SMTP transaction: a reply per recipient, in the order given.</summary>
public sealed record TransactionResult(IReadOnlyList<SmtpReply> RecipientReplies);

/// <summary>
/// One SMTP client connection to an MX host, over MailKit's SmtpClient on a socket the engine dialled.
/// It performs EHLO and STARTTLS per <see cref="TlsMode"/>, checks the certificate per the
/// <see cref="TlsVerificationPlan"/>, records TLSRPT outcomes, and runs transactions with several
/// recipients and per-recipient results. A session may run many transactions.
/// </summary>
public sealed class SmtpSession : IAsyncDisposable
{
    private readonly DeliveryClient client;
    private readonly SmtpConversationCapture capture;
    private readonly Socket socket;
    private readonly SmtpSessionOptions options;

    private SmtpSession(DeliveryClient client, SmtpConversationCapture capture, Socket socket, SmtpSessionOptions options, IPEndPoint local, IPEndPoint remote, string remoteHostName)
    {
        this.client = client;
        this.capture = capture;
        this.socket = socket;
        this.options = options;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        RemoteHostName = remoteHostName;
    }

    public IPEndPoint LocalEndPoint { get; }

    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>The name the certificate is checked against and SNI carries.</summary>
    public string RemoteHostName { get; }

    public bool IsTls => client.IsSecure;

    public SslProtocols TlsProtocol => client.IsSecure ? client.SslProtocol : SslProtocols.None;

    public CertificateVerification Verification { get; private set; } = CertificateVerification.None;

    /// <summary>The DANE record that verified the certificate, if any.</summary>
    public TlsaRecord? VerifiedTlsaRecord { get; private set; }

    /// <summary>Subject of the server certificate, when TLS was used.</summary>
    public string? CertificateSubject { get; private set; }

    /// <summary>Why the certificate did not pass WebPKI verification, if it did not.</summary>
    public string? PkixError { get; private set; }

    /// <summary>The name from the server's greeting.</summary>
    public string RemoteGreetingName => capture.GreetingName;

    public SmtpCapabilities Capabilities => client.Capabilities;

    /// <summary>EHLO keywords after STARTTLS (or of the only EHLO), upper case.</summary>
    public IReadOnlyList<string> EhloKeywords => capture.EhloKeywords;

    /// <summary>The server's LIMITS RCPTMAX, or 0 for no stated limit.</summary>
    public int RcptMax { get; private set; }

    public bool SupportsRequireTls => (client.Capabilities & SmtpCapabilities.RequireTLS) != 0;

    public bool SupportsSmtpUtf8 => (client.Capabilities & SmtpCapabilities.UTF8) != 0;

    public bool Supports8BitMime => (client.Capabilities & SmtpCapabilities.EightBitMime) != 0;

    public long MaxSize => client.MaxSize;

    /// <summary>
    /// Greets the server over <paramref name="socket"/>, negotiates TLS per <paramref name="mode"/> and
    /// records TLSRPT outcomes in <paramref name="recipientDomainResult"/> and <paramref name="hostResult"/>.
    /// </summary>
    /// <exception cref="SmtpSessionException">The server refused, TLS failed, or the connection broke.</exception>
    public static async Task<SmtpSession> ConnectAsync(
        Socket socket,
        string remoteHostName,
        TlsMode mode,
        TlsVerificationPlan plan,
        SmtpSessionOptions options,
        TlsRptResult recipientDomainResult,
        TlsRptResult hostResult,
        CancellationToken cancellationToken)
    {
        var (session, verifier) = Create(socket, remoteHostName, plan, options, recipientDomainResult, hostResult);
        await session.GreetAsync(mode, verifier, recipientDomainResult, hostResult, cancellationToken);
        await session.CompleteSetUpAsync(mode, recipientDomainResult, hostResult);
        return session;
    }

    /// <summary>The MailKit client over the engine's socket, with the certificate check of <paramref name="plan"/> installed.</summary>
    private static (SmtpSession Session, CertificateCheck Verifier) Create(
        Socket socket, string remoteHostName, TlsVerificationPlan plan, SmtpSessionOptions options, TlsRptResult recipientDomainResult, TlsRptResult hostResult)
    {
        var capture = new SmtpConversationCapture(new SmtpBounds(options.CommandTimeout, options.SessionTimeout, options.MaxReplyLineBytes, options.MaxReplyBytes, options.Time));
        var client = new DeliveryClient(capture)
        {
            LocalDomain = options.EhloHostname,
            Timeout = (int)options.CommandTimeout.TotalMilliseconds,
            CheckCertificateRevocation = false,
        };
        var remote = (IPEndPoint)socket.RemoteEndPoint!;
        var local = (IPEndPoint)socket.LocalEndPoint!;
        var session = new SmtpSession(client, capture, socket, options, local, remote, remoteHostName);
        var verifier = new CertificateCheck(session, plan, options.Time, recipientDomainResult, hostResult);
        client.ServerCertificateValidationCallback = verifier.Validate;
        return (session, verifier);
    }

    /// <summary>
    /// Greeting, EHLO and STARTTLS per <paramref name="mode"/>. Each way it can fail is recorded for TLSRPT
    /// where it concerns TLS, closes the session and becomes an <see cref="SmtpSessionException"/>.
    /// </summary>
    private async Task GreetAsync(TlsMode mode, CertificateCheck verifier, TlsRptResult recipientDomainResult, TlsRptResult hostResult, CancellationToken cancellationToken)
    {
        var secureOptions = mode switch
        {
            TlsMode.Opportunistic => SecureSocketOptions.StartTlsWhenAvailable,
            TlsMode.RequiredStartTls => SecureSocketOptions.StartTls,
            _ => SecureSocketOptions.None,
        };
        try
        {
            // Our own stream that leaves the socket open: after a refused greeting the socket still takes
            // our QUIT, and the session closes the socket itself. Every read and write is cancelled by the
            // session's bounds; MailKit's idle timeout would let a trickling peer go on for ever.
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, capture.Aborted);
            await client.ConnectAsync(new NetworkStream(socket, ownsSocket: false), RemoteHostName, RemoteEndPoint.Port, secureOptions, bounded.Token);
            capture.Disarm();
        }
        catch (Exception e) when (capture.Violation is not null && e is not SslHandshakeException && !cancellationToken.IsCancellationRequested)
        {
            await DisposeAsync();
            throw BoundFailure(e);
        }
        catch (NotSupportedException e)
        {
            // STARTTLS required but not advertised (RFC 8460 §4.3.1.1 "starttls-not-supported").
            var detail = FailureDetails(TlsRptResultType.StartTlsNotSupported, "starttls-not-advertised");
            recipientDomainResult.Add(0, 1, detail);
            hostResult.Add(0, 1, detail);
            await DisposeAsync();
            throw new SmtpSessionException(SmtpSessionFailure.StartTlsNotOffered, "server does not offer STARTTLS, which is required", e.Message, e);
        }
        catch (SmtpCommandException e) when (capture.LastClientVerb == "STARTTLS")
        {
            var detail = FailureDetails(TlsRptResultType.StartTlsNotSupported, $"smtp-starttls-reply-code-{(int)e.StatusCode}");
            recipientDomainResult.Add(0, 1, detail);
            hostResult.Add(0, 1, detail);
            await DisposeAsync();
            var reply = SmtpReply.FromServer((int)e.StatusCode, e.Message);
            throw new SmtpSessionException(SmtpSessionFailure.StartTlsRefused, reply, $"STARTTLS refused: {reply}", e);
        }
        catch (SslHandshakeException e)
        {
            // A failure our certificate check found was reported there already; anything else is a
            // handshake failure of its own (RFC 8460 §4.3.1.3 "validation-failure").
            var failure = verifier.ReportedFailure
                ? []
                : new[] { FailureDetails(TlsRptResultType.ValidationFailure, HandshakeReason(e)) };
            recipientDomainResult.Add(0, 1, failure);
            hostResult.Add(0, 1, failure);
            await DisposeAsync();
            var why = capture.Violation ?? verifier.FailureReason ?? (e.InnerException ?? e).Message;
            throw new SmtpSessionException(SmtpSessionFailure.TlsHandshakeFailed, $"TLS handshake failed: {why}", $"TLS handshake failed: {why}", e);
        }
        catch (SmtpCommandException e)
        {
            // Refused in the greeting or to EHLO/HELO. A server refusing with 554 at greeting waits for
            // QUIT (RFC 5321 §3.1); after 421 it closes by itself (§3.8), and after TLS started a
            // plaintext QUIT would be garbage.
            if ((int)e.StatusCode != 421 && !capture.TlsStarted)
            {
                await QuitAfterRefusalAsync(socket, options);
            }
            await DisposeAsync();
            var reply = SmtpReply.FromServer((int)e.StatusCode, e.Message);
            throw new SmtpSessionException(SmtpSessionFailure.SessionRefused, reply, $"server refused session: {reply}", e);
        }
        catch (Exception e) when (e is IOException or SmtpProtocolException or SocketException or TimeoutException or System.Security.Authentication.AuthenticationException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await DisposeAsync();
            throw new SmtpSessionException(SmtpSessionException.ConnectionFailure(e), $"connection failed: {e.Message}", e.Message, e);
        }
    }

    /// <summary>After a successful set-up: the last bound check, RCPTMAX, and the session's TLS outcome for TLSRPT.</summary>
    private async Task CompleteSetUpAsync(TlsMode mode, TlsRptResult recipientDomainResult, TlsRptResult hostResult)
    {
        if (capture.Violation is not null)
        {
            // The last bound was overstepped in the very reply that completed the set-up.
            await DisposeAsync();
            throw BoundFailure(null);
        }
        capture.Capturing = false;
        RcptMax = capture.RcptMax;
        if (client.IsSecure)
        {
            // RFC 8460 §4.4: a successful TLS session counts for the domain's and the host's policy.
            recipientDomainResult.Add(1, 0);
            hostResult.Add(1, 0);
            if (Verification == CertificateVerification.None)
            {
                Verification = CertificateVerification.Unverified;
            }
        }
        else if (mode == TlsMode.Opportunistic)
        {
            // Not a failed session, but worth telling the domain (RFC 8460 §4.3.1.1).
            var detail = FailureDetails(TlsRptResultType.StartTlsNotSupported, string.Empty);
            recipientDomainResult.Add(0, 0, detail);
            hostResult.Add(0, 0, detail);
        }
    }

    /// <summary>
    /// Runs one transaction: MAIL FROM, RCPT TO for each recipient (pipelined when offered), DATA with the
    /// message bytes. Returns a reply per recipient: the RCPT reply for refused recipients, the final DATA
    /// reply for accepted ones.
    /// </summary>
    /// <exception cref="SmtpSessionException">The sender or the data was refused, or the connection broke;
    /// applies to all recipients of the transaction.</exception>
    public async Task<TransactionResult> SendAsync(OutboundMessage message, IReadOnlyList<EmailAddress> recipients, CancellationToken cancellationToken)
    {
        var smtpUtf8 = message.NeedsSmtpUtf8 || (message.Sender?.IsInternational ?? false) || recipients.Any(r => r.IsInternational);
        if (smtpUtf8 && !SupportsSmtpUtf8)
        {
            // RFC 6531 §3.2: without the extension an internationalised message cannot be delivered to this host.
            // Temporary, like mox: another MX host of the domain, or this one later, may support it.
            throw new SmtpSessionException(SmtpSessionFailure.SmtpUtf8Unsupported, "server does not support SMTPUTF8, which the message needs", "SMTPUTF8 not supported");
        }
        if (message.TlsRequirement == TlsRequirement.RequireTls && !(IsTls && SupportsRequireTls))
        {
            // RFC 8689 §4.2.1: the requirement must travel with the message; a server without the extension cannot take it.
            // Temporary per host: the engine makes it permanent once no host of the domain supports it.
            throw new SmtpSessionException(SmtpSessionFailure.RequireTlsUnsupported, "server does not support REQUIRETLS", "REQUIRETLS not supported");
        }
        var wireLength = message.Body.Length;
        if (MaxSize > 0 && wireLength > MaxSize)
        {
            // RFC 1870 §6.1: the server told us its limit; sending anyway would only waste the transfer.
            throw new SmtpSessionException(SmtpSessionFailure.MessageTooLarge, $"message of {wireLength} bytes exceeds the server's limit of {MaxSize} bytes", "message too large");
        }
        var sender = message.Sender is null ? NullSender : Mailbox(message.Sender, smtpUtf8);
        var mailboxes = recipients.Select(r => Mailbox(r, smtpUtf8)).ToArray();
        var mime = RawMessage.Create(message.Body, message.Has8BitContent);
        client.RequireTLS = message.TlsRequirement == TlsRequirement.RequireTls;
        client.BeginTransaction(mailboxes);
        var format = FormatOptions.Default.Clone();
        format.International = smtpUtf8;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, capture.Aborted);
        capture.Arm();
        try
        {
            var dataText = await client.SendAsync(format, mime, sender, mailboxes, bounded.Token);
            var dataReply = SmtpReply.FromServer(250, dataText);
            return new TransactionResult(mailboxes.Select(m => client.RecipientReply(m) is { IsPositive: false } refused ? refused : dataReply).ToArray());
        }
        catch (Exception e) when (capture.Violation is not null && !cancellationToken.IsCancellationRequested)
        {
            throw BoundFailure(e);
        }
        catch (SmtpCommandException e) when (e.ErrorCode == SmtpErrorCode.MessageNotAccepted && client.AllRecipientsRefused)
        {
            // Every RCPT was refused: the per-recipient replies say why.
            return new TransactionResult(mailboxes.Select(m => client.RecipientReply(m)!).ToArray());
        }
        catch (SmtpCommandException e)
        {
            var reply = SmtpReply.FromServer((int)e.StatusCode, e.Message);
            var stage = e.ErrorCode == SmtpErrorCode.SenderNotAccepted ? "MAIL FROM" : "DATA";
            throw new SmtpSessionException(SmtpSessionFailure.CommandRefused, reply, $"{stage} refused: {reply}", e);
        }
        catch (Exception e) when (e is IOException or SmtpProtocolException or ServiceNotConnectedException or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new SmtpSessionException(SmtpSessionException.ConnectionFailure(e), $"connection failed during transaction: {e.Message}", e.Message, e);
        }
        finally
        {
            capture.Disarm();
        }
    }

    /// <summary>Logs in (RFC 4954) with the best mechanism both sides support; for submission to a smarthost.</summary>
    /// <exception cref="SmtpSessionException">The server refused the credentials or the connection broke (temporary: a configuration problem must not bounce mail).</exception>
    public async Task AuthenticateAsync(string userName, string password, CancellationToken cancellationToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, capture.Aborted);
        capture.Arm();
        try
        {
            await client.AuthenticateAsync(new NetworkCredential(userName, password), bounded.Token);
        }
        catch (Exception e) when (capture.Violation is not null && !cancellationToken.IsCancellationRequested)
        {
            throw BoundFailure(e);
        }
        catch (Exception e) when (e is MailKit.Security.AuthenticationException or SmtpCommandException or NotSupportedException or IOException or SmtpProtocolException)
        {
            throw new SmtpSessionException(SmtpSessionFailure.LoginFailed, $"smarthost login failed: {e.Message}", e.Message, e);
        }
        finally
        {
            capture.Disarm();
        }
    }

    /// <summary>True while the connection can take another transaction.</summary>
    public bool IsUsable => client.IsConnected && capture.Violation is null;

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (client.IsConnected && capture.Violation is null)
            {
                using var quit = new CancellationTokenSource(QuitTimeout(options), options.Time);
                using var bounded = CancellationTokenSource.CreateLinkedTokenSource(quit.Token, capture.Aborted);
                capture.Arm();
                await client.DisconnectAsync(quit: true, bounded.Token);
            }
        }
        catch (Exception e) when (e is IOException or SmtpProtocolException or SmtpCommandException or OperationCanceledException or SocketException)
        {
            // QUIT is a courtesy; the outcome of the session is already known.
        }
        client.Dispose();
        socket.Dispose();
        capture.Dispose();
    }

    /// <summary>QUIT waits no longer than a reply would, and never long: the outcome is known by then.</summary>
    private static TimeSpan QuitTimeout(SmtpSessionOptions options) =>
        options.CommandTimeout < TimeSpan.FromSeconds(5) ? options.CommandTimeout : TimeSpan.FromSeconds(5);

    /// <summary>Sends QUIT on the bare socket after a refused greeting and waits briefly for any answer.</summary>
    private static async Task QuitAfterRefusalAsync(Socket socket, SmtpSessionOptions options)
    {
        using var limit = new CancellationTokenSource(QuitTimeout(options), options.Time);
        try
        {
            await socket.SendAsync("QUIT\r\n"u8.ToArray(), SocketFlags.None, limit.Token);
            // Only that the server answered matters (221, RFC 5321 §4.1.1.10), so one read, of a line at most.
            await socket.ReceiveAsync(new byte[512], SocketFlags.None, limit.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The server went away first; the refusal stands.
        }
    }

    /// <summary>The failure of a session whose peer overstepped a bound: temporary, for this host only.</summary>
    private SmtpSessionException BoundFailure(Exception? inner)
    {
        var reason = capture.Violation!;
        Exception cause = capture.ViolatedBound is SmtpBoundKind.ReplyDeadline or SmtpBoundKind.SessionDeadline
            ? new TimeoutException(reason, inner)
            : new InvalidDataException(reason, inner);
        var failure = cause is TimeoutException ? SmtpSessionFailure.DeadlineOverstepped : SmtpSessionFailure.LimitOverstepped;
        return new SmtpSessionException(failure, reason, reason, cause, capture.ViolatedBound);
    }

    private static readonly MailboxAddress NullSender = new(string.Empty, string.Empty);

    private static MailboxAddress Mailbox(EmailAddress address, bool smtpUtf8) =>
        new(string.Empty, address.ToSmtpString(smtpUtf8));

    private static string HandshakeReason(SslHandshakeException e) => (e.InnerException ?? e) switch
    {
        System.Security.Authentication.AuthenticationException => "tls-handshake-failure",
        IOException => "tls-connection-failure",
        _ => "tls-error",
    };

    /// <summary>TLSRPT failure details about this connection (RFC 8460 §4.4 "failure-details").</summary>
    private TlsRptFailureDetails FailureDetails(string resultType, string reasonCode) => new()
    {
        ResultType = resultType,
        SendingMtaIp = LocalEndPoint.Address.ToString(),
        ReceivingMxHostname = RemoteHostName,
        ReceivingMxHelo = capture.GreetingName.Length > 0 ? capture.GreetingName : null,
        ReceivingIp = RemoteEndPoint.Address.ToString(),
        FailureReasonCode = reasonCode,
    };

    /// <summary>MailKit's client with per-recipient results instead of an exception on the first refusal.</summary>
    private sealed class DeliveryClient(IProtocolLogger logger) : SmtpClient(logger)
    {
        private readonly Dictionary<MailboxAddress, SmtpReply> replies = new(ReferenceEqualityComparer.Instance);
        private int expected;

        public bool AllRecipientsRefused => replies.Count == expected && replies.Values.All(r => !r.IsPositive);

        public void BeginTransaction(MailboxAddress[] recipients)
        {
            replies.Clear();
            expected = recipients.Length;
        }

        public SmtpReply? RecipientReply(MailboxAddress mailbox) => replies.GetValueOrDefault(mailbox);

        protected override void OnRecipientAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            replies[mailbox] = SmtpReply.FromServer((int)response.StatusCode, response.Response);

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            replies[mailbox] = SmtpReply.FromServer((int)response.StatusCode, response.Response);

        protected override void OnNoRecipientsAccepted(MimeMessage message)
        {
            // MailKit throws MessageNotAccepted after this; SendAsync turns that into per-recipient results.
        }

        // The bytes go out as submitted: no re-encoding of parts (see RawMessage).
        protected override void Prepare(FormatOptions options, MimeMessage message, EncodingConstraint constraint, int maxLineLength)
        {
        }

        protected override long GetSize(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) => RawMessage.WireLength(message);

        protected override Task<long> GetSizeAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) => Task.FromResult(RawMessage.WireLength(message));
    }

    /// <summary>
    /// The certificate callback: verifies DANE and WebPKI itself, because both may have to be checked,
    /// reported to TLSRPT, and then possibly ignored (TLS-Required: No) or only reported (opportunistic TLS).
    /// </summary>
    private sealed class CertificateCheck(
        SmtpSession session,
        TlsVerificationPlan plan,
        TimeProvider time,
        TlsRptResult recipientDomainResult,
        TlsRptResult hostResult)
    {
        public bool ReportedFailure { get; private set; }

        public string? FailureReason { get; private set; }

        public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (certificate is null)
            {
                FailureReason = "server presented no certificate";
                return plan.IgnoreVerificationErrors || (plan.DaneRecords is null && !plan.RequirePkix);
            }
            var leaf = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
            var presented = Tls.PresentedCertificates.From(leaf, chain);
            var now = time.GetUtcNow();
            session.CertificateSubject = leaf.Subject;
            string? failure = null;

            if (plan.DaneRecords is not null)
            {
                if (plan.DaneRecords.Count > 0)
                {
                    var dane = Dane.DaneVerifier.Verify(plan.DaneRecords, leaf, presented, plan.DaneAllowedNames, now);
                    if (dane.Verified)
                    {
                        session.VerifiedTlsaRecord = dane.MatchedRecord;
                        session.Verification = dane.MatchedRecord!.Usage == 2 ? CertificateVerification.DaneTa : CertificateVerification.DaneEe;
                    }
                    else
                    {
                        // RFC 8460 has no result type for "no TLSA record matched"; validation-failure with a reason code it is.
                        hostResult.Add(0, 0, Details(TlsRptResultType.ValidationFailure, dane.HadErrors ? "dane-no-match+errors" : "dane-no-match"));
                        if (!plan.IgnoreVerificationErrors)
                        {
                            failure = "certificate does not match the DANE TLSA records" + (dane.Error is null ? string.Empty : $": {dane.Error}");
                        }
                    }
                }
            }

            var pkix = plan.PkixAllowedNames.Count > 0
                ? Tls.PkixVerifier.VerifyForAny(leaf, presented, plan.PkixAllowedNames, plan.ExtraTrustRoots, now)
                : Tls.PkixVerifier.Verify(leaf, presented, session.RemoteHostName, plan.ExtraTrustRoots, now);
            if (pkix.Valid)
            {
                if (session.Verification is CertificateVerification.None or CertificateVerification.Unverified)
                {
                    session.Verification = CertificateVerification.Pkix;
                }
            }
            else
            {
                session.PkixError = pkix.Error;
                // Reported for every TLS session, also opportunistic ones: the domain owner wants to know (mox does the same).
                recipientDomainResult.Add(0, 0, Details(pkix.TlsRptResultType ?? TlsRptResultType.ValidationFailure, pkix.FailureReasonCode));
                if (plan.RequirePkix && !plan.IgnoreVerificationErrors)
                {
                    failure = failure is null ? $"WebPKI verification failed: {pkix.Error}" : $"{failure}; WebPKI verification failed: {pkix.Error}";
                }
            }
            FailureReason = failure;
            ReportedFailure = failure is not null;
            return failure is null;
        }

        private TlsRptFailureDetails Details(string type, string reason) => session.FailureDetails(type, reason);
    }
}

/// <summary>Settings of the SMTP client side.</summary>
public sealed class SmtpSessionOptions
{
    /// <summary>The name CloudDelivery gives in EHLO; should have matching forward and reverse DNS.</summary>
    public required string EhloHostname { get; init; }

    /// <summary>
    /// Deadline for each complete reply, the greeting included, from our last write or the previous reply
    /// to its final line; while the message is sent, each write must complete within it
    /// (RFC 5321 §4.5.3.2 suggests minutes).
    /// </summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Deadline for the whole connection, over all its transactions.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Longest reply line accepted. RFC 5321 §4.5.3.1.5 allows 512 octets; this is generous.</summary>
    public int MaxReplyLineBytes { get; init; } = 4096;

    /// <summary>Longest reply accepted, all lines of a multi-line reply together.</summary>
    public int MaxReplyBytes { get; init; } = 64 * 1024;

    public TimeProvider Time { get; init; } = TimeProvider.System;
}
