namespace CloudDelivery.Smtp;

/// <summary>
/// What ended a connection or a transaction. The delivery engine turns each into a named delivery failure
/// (its reply code, enhanced status code and permanence); the session only says what happened.
/// </summary>
public enum SmtpSessionFailure
{
    /// <summary>STARTTLS was required but the server does not advertise it (RFC 3207 §4).</summary>
    StartTlsNotOffered,

    /// <summary>The server answered STARTTLS with an error; its reply is kept.</summary>
    StartTlsRefused,

    /// <summary>The TLS handshake or the certificate check failed.</summary>
    TlsHandshakeFailed,

    /// <summary>The server refused the session in its greeting or to EHLO/HELO (RFC 5321 §3.1); its reply is kept.</summary>
    SessionRefused,

    /// <summary>The connection broke or the peer spoke nonsense.</summary>
    ConnectionFailed,

    /// <summary>The connection was given up because an operation took too long.</summary>
    ConnectionTimedOut,

    /// <summary>The message needs SMTPUTF8 and the server does not offer it (RFC 6531 §3.2).</summary>
    SmtpUtf8Unsupported,

    /// <summary>The message needs REQUIRETLS and the server does not offer it over TLS (RFC 8689 §4.2.1).</summary>
    RequireTlsUnsupported,

    /// <summary>The message is larger than the server's SIZE (RFC 1870 §6.1).</summary>
    MessageTooLarge,

    /// <summary>The server refused MAIL FROM or DATA; its reply is kept.</summary>
    CommandRefused,

    /// <summary>AUTH failed at a smarthost.</summary>
    LoginFailed,

    /// <summary>The peer let a reply or session deadline pass (see <see cref="SmtpSessionOptions"/>).</summary>
    DeadlineOverstepped,

    /// <summary>The peer overstepped a size cap of a reply.</summary>
    LimitOverstepped,
}

/// <summary>
/// A failure of a whole connection or transaction: what happened, the server's reply when the server
/// refused something, and otherwise a description of our own.
/// </summary>
public sealed class SmtpSessionException : Exception
{
    /// <summary>A failure decided by us: <paramref name="detail"/> says what went wrong.</summary>
    public SmtpSessionException(SmtpSessionFailure failure, string detail, string message, Exception? inner = null, SmtpBoundKind? bound = null)
        : base(message, inner)
    {
        Failure = failure;
        Detail = detail;
        Bound = bound;
    }

    /// <summary>A refusal by the server: <paramref name="serverReply"/> is its answer.</summary>
    public SmtpSessionException(SmtpSessionFailure failure, SmtpReply serverReply, string message, Exception? inner = null)
        : base(message, inner)
    {
        Failure = failure;
        ServerReply = serverReply;
        Detail = serverReply.Text;
    }

    public SmtpSessionFailure Failure { get; }

    /// <summary>The server's reply, for refusals (STARTTLS, greeting/EHLO, MAIL FROM, DATA); null for our own findings.</summary>
    public SmtpReply? ServerReply { get; }

    /// <summary>What went wrong, in words fit for a recipient's result.</summary>
    public string Detail { get; }

    /// <summary>The peer overstepped this bound of the session (a deadline or a size cap); null otherwise.</summary>
    public SmtpBoundKind? Bound { get; }

    /// <summary>A broken connection, told apart from one given up for taking too long.</summary>
    internal static SmtpSessionFailure ConnectionFailure(Exception e) =>
        e is TimeoutException or OperationCanceledException ? SmtpSessionFailure.ConnectionTimedOut : SmtpSessionFailure.ConnectionFailed;
}
