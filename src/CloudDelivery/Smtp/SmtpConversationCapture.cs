using System.Globalization;
using System.Text;
using MailKit;

namespace CloudDelivery.Smtp;

/// <summary>What bound of a session a peer overstepped.</summary>
public enum SmtpBoundKind
{
    /// <summary>No complete reply within the reply deadline (or our writes made no progress for as long).</summary>
    ReplyDeadline,

    /// <summary>The connection as a whole outlived the session deadline.</summary>
    SessionDeadline,

    /// <summary>A reply line longer than the line cap.</summary>
    LineTooLong,

    /// <summary>A (multi-line) reply longer than the reply cap.</summary>
    ReplyTooLong,
}

/// <summary>The limits one SMTP session holds its peer to.</summary>
internal sealed record SmtpBounds(TimeSpan ReplyTimeout, TimeSpan SessionTimeout, int MaxReplyLineBytes, int MaxReplyBytes, TimeProvider Time);

/// <summary>
/// Watches an SMTP conversation through MailKit's protocol-logger hook, which sees the plaintext bytes
/// MailKit read (after TLS too) and wrote. It bounds the session: a deadline for each complete reply
/// (from our last write or the previous reply to the final line, so a peer sending a byte at a time cannot
/// stretch it), a deadline for the whole session, and caps on a reply line and a whole reply. A bound
/// overstepped cancels <see cref="Aborted"/>, which is linked into every MailKit call, so the pending read
/// or write ends at once and MailKit never holds more than a cap's worth of a reply.
/// While the session is set up it also learns what MailKit does not expose: the server's greeting name
/// (TLSRPT "receiving-mx-helo"), the raw EHLO keywords (LIMITS RCPTMAX, RFC 9422 §4) and whether the last
/// command sent was STARTTLS. Message data is only counted, never kept.
/// </summary>
internal sealed class SmtpConversationCapture : IProtocolLogger
{
    private static readonly HashSet<string> Verbs = ["EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY"];

    private readonly SmtpBounds bounds;
    private readonly Lock gate = new();
    private readonly CancellationTokenSource abort = new();
    private readonly ITimer replyTimer;
    private readonly ITimer sessionTimer;
    private readonly byte[] line;
    private readonly List<string> replyLines = [];
    private int lineLength;
    private int replyLength;
    private bool armed;
    private long replyDueAt;
    private bool inData;
    private bool expectEhloReply;
    private string awaiting = "greeting";

    public SmtpConversationCapture(SmtpBounds bounds)
    {
        this.bounds = bounds;
        line = new byte[bounds.MaxReplyLineBytes];
        replyTimer = bounds.Time.CreateTimer(_ => OnReplyDeadline(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        sessionTimer = bounds.Time.CreateTimer(_ => OnSessionDeadline(), null, bounds.SessionTimeout, Timeout.InfiniteTimeSpan);
        // The greeting is the first reply: its deadline runs from the connect.
        Arm();
    }

    /// <summary>Cancelled when the peer overstepped a bound; see <see cref="Violation"/>.</summary>
    public CancellationToken Aborted => abort.Token;

    /// <summary>Which bound was overstepped first, in words for the recipient's result; null while none was.</summary>
    public string? Violation { get; private set; }

    public SmtpBoundKind? ViolatedBound { get; private set; }

    /// <summary>Parse greeting and EHLO replies (only while the session is set up).</summary>
    public bool Capturing { get; set; } = true;

    /// <summary>The verb of the last command the client wrote ("EHLO", "STARTTLS"...).</summary>
    public string LastClientVerb { get; private set; } = string.Empty;

    /// <summary>The server answered STARTTLS with 220: the connection carries TLS from then on.</summary>
    public bool TlsStarted { get; private set; }

    public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }

    /// <summary>The name the server gave in its 220 greeting (RFC 5321 §4.3.1).</summary>
    public string GreetingName { get; private set; } = string.Empty;

    /// <summary>EHLO keywords with parameters of the most recent 250 EHLO reply, upper-cased, e.g. "LIMITS RCPTMAX=2".</summary>
    public IReadOnlyList<string> EhloKeywords { get; private set; } = [];

    /// <summary>A MailKit call is under way: the reply deadline runs.</summary>
    public void Arm()
    {
        lock (gate)
        {
            armed = true;
            RestartDeadline();
        }
    }

    /// <summary>No call is under way: time spent between commands is ours, not the peer's.</summary>
    public void Disarm()
    {
        lock (gate)
        {
            armed = false;
            replyTimer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    public void LogConnect(Uri uri)
    {
    }

    public void LogClient(byte[] buffer, int offset, int count)
    {
        lock (gate)
        {
            if (!inData)
            {
                // Known verbs only: continuation lines of a SASL exchange must not end up in a reason.
                var text = Encoding.ASCII.GetString(buffer, offset, Math.Min(count, 16));
                var end = text.IndexOfAny([' ', '\r', '\n']);
                var verb = (end < 0 ? text : text[..end]).ToUpperInvariant();
                if (Verbs.Contains(verb))
                {
                    LastClientVerb = verb;
                    awaiting = $"reply to {verb}";
                    expectEhloReply = verb is "EHLO";
                }
            }
            // We made progress: the peer gets a full deadline for what comes next.
            RestartDeadline();
        }
    }

    public void LogServer(byte[] buffer, int offset, int count)
    {
        if (Count(buffer, offset, count))
        {
            // Here, on MailKit's read path, no socket operation is pending: cancelling now makes its very
            // next read throw, so it never holds more than one read beyond a cap.
            CancelQuietly(abort);
        }
    }

    /// <summary>Counts a chunk the server sent; true when it oversteps a cap.</summary>
    private bool Count(byte[] buffer, int offset, int count)
    {
        lock (gate)
        {
            if (Violation is not null)
            {
                return false;
            }
            for (var i = offset; i < offset + count; i++)
            {
                var b = buffer[i];
                replyLength++;
                if (b == (byte)'\n')
                {
                    EndLine();
                    continue;
                }
                if (lineLength < line.Length)
                {
                    line[lineLength] = b;
                }
                lineLength++;
                // RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; the caps are generous, but they hold.
                if (lineLength > bounds.MaxReplyLineBytes)
                {
                    Violate(SmtpBoundKind.LineTooLong, $"{awaiting} line longer than {bounds.MaxReplyLineBytes} bytes");
                    return true;
                }
                if (replyLength > bounds.MaxReplyBytes)
                {
                    Violate(SmtpBoundKind.ReplyTooLong, $"{awaiting} longer than {bounds.MaxReplyBytes} bytes");
                    return true;
                }
            }
            return false;
        }
    }

    private void EndLine()
    {
        var length = lineLength > 0 && line[lineLength - 1] == (byte)'\r' ? lineLength - 1 : lineLength;
        var final = length < 4 || line[3] != (byte)'-';
        if (Capturing)
        {
            replyLines.Add(Encoding.Latin1.GetString(line, 0, length));
        }
        var code = length >= 3 && int.TryParse(Encoding.ASCII.GetString(line, 0, 3), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
        lineLength = 0;
        if (!final)
        {
            return;
        }
        if (Capturing)
        {
            ReplyComplete(replyLines);
        }
        replyLines.Clear();
        replyLength = 0;
        if (code == 220 && LastClientVerb == "STARTTLS")
        {
            // The handshake runs under the same deadline (RFC 3207 §4); MailKit logs no bytes of it.
            TlsStarted = true;
            awaiting = "TLS handshake";
        }
        // After 354 the message data goes out; the next reply ends it (RFC 5321 §4.1.1.4).
        inData = code == 354;
        if (inData)
        {
            awaiting = "reply to the message data";
        }
        RestartDeadline();
    }

    private void ReplyComplete(List<string> lines)
    {
        if (GreetingName.Length == 0 && lines[0].StartsWith("220", StringComparison.Ordinal) && LastClientVerb.Length == 0)
        {
            var rest = lines[0].Length > 4 ? lines[0][4..] : string.Empty;
            var space = rest.IndexOf(' ', StringComparison.Ordinal);
            GreetingName = space < 0 ? rest : rest[..space];
        }
        else if (expectEhloReply && lines[0].StartsWith("250", StringComparison.Ordinal))
        {
            // The first line is the greeting-like "250-name", the rest are keywords (RFC 5321 §4.1.1.1).
            EhloKeywords = lines.Skip(1).Select(l => l.Length > 4 ? l[4..].Trim().ToUpperInvariant() : string.Empty).Where(k => k.Length > 0).ToArray();
        }
    }

    private void RestartDeadline()
    {
        if (!armed || Violation is not null)
        {
            return;
        }
        replyDueAt = bounds.Time.GetTimestamp() + (long)(bounds.ReplyTimeout.TotalSeconds * bounds.Time.TimestampFrequency);
        replyTimer.Change(bounds.ReplyTimeout, Timeout.InfiniteTimeSpan);
    }

    private void OnReplyDeadline()
    {
        lock (gate)
        {
            if (!armed || Violation is not null)
            {
                return;
            }
            var remaining = replyDueAt - bounds.Time.GetTimestamp();
            if (remaining > 0)
            {
                // A timer change raced with this callback: the deadline moved on.
                replyTimer.Change(TimeSpan.FromSeconds((double)remaining / bounds.Time.TimestampFrequency), Timeout.InfiniteTimeSpan);
                return;
            }
            Violate(SmtpBoundKind.ReplyDeadline, $"no complete {awaiting} within {Duration(bounds.ReplyTimeout)}");
        }
        // Outside the lock: cancelling runs the pending socket operation's callbacks on this thread.
        CancelQuietly(abort);
    }

    private void OnSessionDeadline()
    {
        lock (gate)
        {
            if (Violation is not null)
            {
                return;
            }
            Violate(SmtpBoundKind.SessionDeadline, $"connection open longer than the session limit of {Duration(bounds.SessionTimeout)}");
        }
        CancelQuietly(abort);
    }

    /// <summary>Records the first bound overstepped; the caller cancels the session's calls once out of the lock.</summary>
    private void Violate(SmtpBoundKind kind, string reason)
    {
        Violation = reason;
        ViolatedBound = kind;
        replyTimer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        sessionTimer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The session ended first; nothing is left to cancel.
        }
    }

    private static string Duration(TimeSpan span) => span.TotalSeconds >= 1 && span.TotalSeconds == Math.Floor(span.TotalSeconds)
        ? $"{span.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s"
        : $"{span.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms";

    /// <summary>RCPTMAX from "LIMITS" (RFC 9422 §4.2), or 0 when the server states no limit.</summary>
    public int RcptMax
    {
        get
        {
            foreach (var keyword in EhloKeywords)
            {
                if (!keyword.StartsWith("LIMITS ", StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (var pair in keyword[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    if (eq > 0 && pair[..eq] == "RCPTMAX" && int.TryParse(pair[(eq + 1)..], out var max) && max > 0)
                    {
                        return max;
                    }
                }
            }
            return 0;
        }
    }

    public void Dispose()
    {
        replyTimer.Dispose();
        sessionTimer.Dispose();
        abort.Dispose();
    }
}
