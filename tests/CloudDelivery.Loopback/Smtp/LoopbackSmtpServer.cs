using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;

namespace CloudDelivery.Loopback.Smtp;

/// <summary>
/// An SMTP server on loopback (RFC 5321 with STARTTLS, PIPELINING, 8BITMIME, SMTPUTF8, SIZE,
/// ENHANCEDSTATUSCODES, LIMITS and REQUIRETLS) whose replies tests choose: refuse recipients, refuse
/// STARTTLS, limit recipients, stall. It records what it received byte for byte. With
/// <see cref="LoopbackSmtpServerOptions.KeepMessages"/> off it is a lean sink for benchmarks.
/// </summary>
public sealed class LoopbackSmtpServer : IAsyncDisposable
{
    private const int MaxLineLength = 4096;

    private readonly LoopbackSmtpServerOptions options;
    private readonly TcpListener listener;
    private readonly CancellationTokenSource stopping = new();
    private readonly ConcurrentQueue<ReceivedSmtpMessage> messages = new();
    private readonly Task acceptLoop;
    private int connectionCount;
    private int openConnections;
    private int peakConnections;
    private int transactionCount;
    private long messagesAccepted;
    private int quitCount;
    private readonly Lock throttleGate = new();
    private DateTimeOffset throttleWindowStart = DateTimeOffset.MinValue;
    private int acceptedInThrottleWindow;
    private int throttledReplies;

    private LoopbackSmtpServer(LoopbackSmtpServerOptions options, TcpListener listener)
    {
        this.options = options;
        this.listener = listener;
        EndPoint = (IPEndPoint)listener.LocalEndpoint;
        acceptLoop = Task.Run(AcceptAsync);
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Accepted messages in the order their DATA completed.</summary>
    public IReadOnlyList<ReceivedSmtpMessage> Messages => messages.ToArray();

    public int ConnectionCount => Volatile.Read(ref connectionCount);

    /// <summary>Most connections that were open at the same time.</summary>
    public int PeakConcurrentConnections => Volatile.Read(ref peakConnections);

    /// <summary>DATA transactions completed with 250.</summary>
    public int TransactionCount => Volatile.Read(ref transactionCount);

    public long MessagesAccepted => Interlocked.Read(ref messagesAccepted);

    /// <summary>QUIT commands received, on any connection.</summary>
    public int QuitCount => Volatile.Read(ref quitCount);

    /// <summary>Throttling replies given (<see cref="LoopbackSmtpServerOptions.Throttle"/>).</summary>
    public int ThrottledReplies => Volatile.Read(ref throttledReplies);

    /// <summary>The throttle reply when <paramref name="stage"/> is the throttled one and this window's budget is spent.</summary>
    private SmtpServerReply? ThrottleAt(SmtpThrottleStage stage)
    {
        if (options.Throttle is not { } throttle || throttle.Stage != stage)
        {
            return null;
        }
        lock (throttleGate)
        {
            RollThrottleWindow(throttle);
            if (acceptedInThrottleWindow < throttle.MessagesPerWindow)
            {
                return null;
            }
        }
        Interlocked.Increment(ref throttledReplies);
        return throttle.Reply;
    }

    private void CountForThrottle()
    {
        if (options.Throttle is not { } throttle)
        {
            return;
        }
        lock (throttleGate)
        {
            RollThrottleWindow(throttle);
            acceptedInThrottleWindow++;
        }
    }

    private void RollThrottleWindow(SmtpThrottle throttle)
    {
        var now = (throttle.Clock ?? TimeProvider.System).GetUtcNow();
        if (now - throttleWindowStart >= throttle.Window)
        {
            throttleWindowStart = now;
            acceptedInThrottleWindow = 0;
        }
    }

    public static Task<LoopbackSmtpServer> StartAsync(LoopbackSmtpServerOptions options, CancellationToken cancellationToken = default)
    {
        var listener = new TcpListener(options.Address, options.Port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start(1024);
        return Task.FromResult(new LoopbackSmtpServer(options, listener));
    }

    /// <summary>Waits until at least <paramref name="count"/> messages were accepted.</summary>
    public async Task WaitForMessagesAsync(int count, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (MessagesAccepted < count)
        {
            await Task.Delay(10, deadline.Token);
        }
    }

    private Task AcceptAsync() => AcceptLoop.RunAsync(listener, ServeConnectionAsync, stopping.Token);

    private async Task ServeConnectionAsync(Socket socket)
    {
        var number = Interlocked.Increment(ref connectionCount);
        var open = Interlocked.Increment(ref openConnections);
        try
        {
            for (var peak = Volatile.Read(ref peakConnections); open > peak; peak = Volatile.Read(ref peakConnections))
            {
                if (Interlocked.CompareExchange(ref peakConnections, open, peak) == peak)
                {
                    break;
                }
            }
            using var connection = new Connection(this, socket, number);
            if (options.MaxConcurrentConnections is { } limit && open > limit)
            {
                await connection.RefuseAsync("421 4.7.0 too many connections from your address\r\n");
                return;
            }
            if (ThrottleAt(SmtpThrottleStage.Connect) is { } throttled)
            {
                await connection.RefuseAsync(throttled.Format());
                return;
            }
            await connection.RunAsync();
        }
        finally
        {
            Interlocked.Decrement(ref openConnections);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        listener.Stop();
        try
        {
            await acceptLoop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }
        stopping.Dispose();
    }

    /// <summary>One client connection: a small state machine over a buffered line reader.</summary>
    private sealed class Connection(LoopbackSmtpServer server, Socket socket, int number) : IDisposable
    {
        private readonly LoopbackSmtpServerOptions options = server.options;
        private readonly byte[] input = new byte[64 * 1024];
        private readonly MemoryStream output = new();
        private Stream stream = new NetworkStream(socket, ownsSocket: false);
        private int start;
        private int end;
        private SslStream? tls;
        private bool greeted;
        private string? mailFrom;
        private List<string> mailParameters = [];
        private readonly List<string> recipients = [];
        private int rcptCommands;
        private bool authenticated;

        /// <summary>A chosen reply was 421: the server closes the connection after it (RFC 5321 §3.8).</summary>
        private bool closing;

        private CancellationToken Stopping => server.stopping.Token;

        public void Dispose()
        {
            stream.Dispose();
            output.Dispose();
        }

        /// <summary>Greets with <paramref name="reply"/> instead of 220 and ends the connection.</summary>
        public async Task RefuseAsync(string reply)
        {
            Reply(reply);
            await FlushAsync();
        }

        public async Task RunAsync()
        {
            if (options.Stall == SmtpStall.BeforeGreeting || number >= options.StallGreetingFromConnection)
            {
                await Task.Delay(Timeout.Infinite, Stopping);
            }
            switch (options.Hostility)
            {
                case SmtpHostility.HugeGreetingLine:
                    await SendHugeLineAsync();
                    return;
                case SmtpHostility.Greeting421:
                    Reply("421 4.3.2 not accepting mail now\r\n");
                    await FlushAsync();
                    return;
                case SmtpHostility.Greeting554:
                    await RefuseUntilQuitAsync();
                    return;
            }
            Reply($"220 {options.Hostname} ESMTP CloudDelivery loopback\r\n");
            await FlushAsync();
            while (true)
            {
                var line = await ReadLineAsync();
                if (line is null)
                {
                    return;
                }
                if (line.Length > MaxLineLength)
                {
                    Reply("500 5.5.2 line too long\r\n");
                    await FlushAsync();
                    continue;
                }
                var text = Encoding.UTF8.GetString(line);
                var space = text.IndexOf(' ', StringComparison.Ordinal);
                var verb = (space < 0 ? text : text[..space]).ToUpperInvariant();
                var argument = space < 0 ? string.Empty : text[(space + 1)..];
                switch (verb)
                {
                    case "EHLO":
                    case "HELO":
                        Hello(verb == "EHLO");
                        if (options.Hostility == SmtpHostility.EndlessEhloReply && verb == "EHLO")
                        {
                            await SendEndlessReplyAsync();
                            return;
                        }
                        if (options.Stall == SmtpStall.AfterEhlo)
                        {
                            await FlushAsync();
                            await Task.Delay(Timeout.Infinite, Stopping);
                        }
                        break;
                    case "STARTTLS":
                        if (!await StartTlsAsync())
                        {
                            return;
                        }
                        continue;
                    case "AUTH":
                        Authenticate(argument);
                        break;
                    case "MAIL":
                        Mail(argument);
                        break;
                    case "RCPT":
                        Rcpt(argument);
                        if (options.Stall == SmtpStall.AfterRcpt)
                        {
                            await FlushAsync();
                            await Task.Delay(Timeout.Infinite, Stopping);
                        }
                        break;
                    case "DATA":
                        await DataAsync();
                        break;
                    case "RSET":
                        ResetTransaction();
                        Reply("250 2.0.0 reset\r\n");
                        break;
                    case "NOOP":
                        Reply("250 2.0.0 ok\r\n");
                        break;
                    case "VRFY":
                        Reply("252 2.5.0 cannot verify\r\n");
                        break;
                    case "QUIT":
                        Interlocked.Increment(ref server.quitCount);
                        Reply("221 2.0.0 bye\r\n");
                        await FlushAsync();
                        return;
                    default:
                        Reply("500 5.5.1 command not recognized\r\n");
                        break;
                }
                if (closing)
                {
                    await FlushAsync();
                    return;
                }
                // Replies to pipelined commands go out together once the client waits (RFC 2920 §3.2).
                if (start == end)
                {
                    await FlushAsync();
                }
            }
        }

        private void Hello(bool extended)
        {
            greeted = true;
            ResetTransaction();
            if (!extended)
            {
                Reply($"250 {options.Hostname}\r\n");
                return;
            }
            var lines = new List<string> { options.Hostname };
            if (options.Pipelining)
            {
                lines.Add("PIPELINING");
            }
            if (options.EightBitMime)
            {
                lines.Add("8BITMIME");
            }
            if (options.SmtpUtf8)
            {
                lines.Add("SMTPUTF8");
            }
            if (options.MaxSize is { } size)
            {
                lines.Add($"SIZE {size}");
            }
            lines.Add("ENHANCEDSTATUSCODES");
            if (options.RcptMax is { } max)
            {
                lines.Add($"LIMITS RCPTMAX={max}");
            }
            if (tls is null && options.Certificate is not null && options.AdvertiseStartTls)
            {
                lines.Add("STARTTLS");
            }
            if (tls is not null && options.AdvertiseRequireTls)
            {
                lines.Add("REQUIRETLS");
            }
            if (tls is not null && options.Credentials is not null)
            {
                lines.Add("AUTH PLAIN");
            }
            for (var i = 0; i < lines.Count; i++)
            {
                Reply($"250{(i == lines.Count - 1 ? ' ' : '-')}{lines[i]}\r\n");
            }
        }

        private async Task<bool> StartTlsAsync()
        {
            if (tls is not null || options.Certificate is null)
            {
                Reply("503 5.5.1 TLS not available\r\n");
                await FlushAsync();
                return true;
            }
            if (options.StartTlsReply is { } refusal)
            {
                Reply(refusal.Format());
                await FlushAsync();
                return true;
            }
            Reply("220 2.0.0 ready to start TLS\r\n");
            await FlushAsync();
            if (options.Hostility == SmtpHostility.GarbageAfterStartTls)
            {
                await stream.WriteAsync("this is not a TLS handshake\r\n"u8.ToArray(), Stopping);
                await Task.Delay(Timeout.Infinite, Stopping);
            }
            // RFC 3207 §4.2: anything the client pipelined after STARTTLS is discarded.
            start = end = 0;
            tls = new SslStream(stream, leaveInnerStreamOpen: false);
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(options.Certificate, options.CertificateChain, offline: true),
                ClientCertificateRequired = false,
                CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
            }, Stopping);
            stream = tls;
            greeted = false;
            authenticated = false;
            ResetTransaction();
            return true;
        }

        private void Mail(string argument)
        {
            if (!greeted)
            {
                Reply("503 5.5.1 say EHLO first\r\n");
                return;
            }
            if (options.Hostility == SmtpHostility.Tarpit)
            {
                ReplyChosen(new SmtpServerReply(421, "4.7.0", "try again later"));
                return;
            }
            if (mailFrom is not null)
            {
                Reply("503 5.5.1 nested MAIL\r\n");
                return;
            }
            if (options.Credentials is not null && !authenticated)
            {
                Reply("530 5.7.0 authentication required\r\n");
                return;
            }
            if (!TryPath(argument, "FROM:", out var path, out var parameters))
            {
                Reply("501 5.5.4 syntax: MAIL FROM:<address>\r\n");
                return;
            }
            if (parameters.Any(p => p.Equals("REQUIRETLS", StringComparison.OrdinalIgnoreCase)) && (tls is null || !options.AdvertiseRequireTls))
            {
                Reply("555 5.5.4 REQUIRETLS not supported here\r\n");
                return;
            }
            var sizeParameter = parameters.FirstOrDefault(p => p.StartsWith("SIZE=", StringComparison.OrdinalIgnoreCase));
            if (options.MaxSize is { } max && sizeParameter is not null && long.TryParse(sizeParameter[5..], out var declared) && declared > max)
            {
                Reply("552 5.3.4 message too big\r\n");
                return;
            }
            var custom = server.ThrottleAt(SmtpThrottleStage.Mail) ?? options.OnMail?.Invoke(new SmtpMailContext(number, path, parameters, tls is not null));
            if (custom is not null)
            {
                ReplyChosen(custom);
                return;
            }
            mailFrom = path;
            mailParameters = parameters;
            Reply("250 2.1.0 sender ok\r\n");
        }

        private void Rcpt(string argument)
        {
            if (mailFrom is null)
            {
                Reply("503 5.5.1 need MAIL first\r\n");
                return;
            }
            if (!TryPath(argument, "TO:", out var path, out _) || path.Length == 0)
            {
                Reply("501 5.5.4 syntax: RCPT TO:<address>\r\n");
                return;
            }
            var index = rcptCommands++;
            if (options.RcptMax is { } max && index >= max)
            {
                Reply("452 4.5.3 too many recipients\r\n");
                return;
            }
            var custom = server.ThrottleAt(SmtpThrottleStage.Rcpt) ?? options.OnRcpt?.Invoke(new SmtpRcptContext(number, server.TransactionCount + 1, path, index, tls is not null));
            if (custom is not null)
            {
                ReplyChosen(custom);
                return;
            }
            recipients.Add(path);
            Reply("250 2.1.5 recipient ok\r\n");
        }

        private async Task DataAsync()
        {
            if (mailFrom is null || recipients.Count == 0)
            {
                Reply("503 5.5.1 need MAIL and RCPT first\r\n");
                return;
            }
            Reply("354 end data with <CR><LF>.<CR><LF>\r\n");
            await FlushAsync();
            if (options.Hostility == SmtpHostility.NeverReadData)
            {
                await Task.Delay(Timeout.Infinite, Stopping);
            }
            var data = options.KeepMessages ? new MemoryStream() : null;
            long size = 0;
            while (true)
            {
                var line = await ReadLineAsync(unlimited: true);
                if (line is null)
                {
                    return;
                }
                if (line.Length == 1 && line[0] == '.')
                {
                    break;
                }
                // RFC 5321 §4.5.2: a leading dot was doubled by the client.
                var content = line.Length > 0 && line[0] == '.' ? line.AsSpan(1) : line.AsSpan();
                size += content.Length + 2;
                if (data is not null)
                {
                    data.Write(content);
                    data.Write("\r\n"u8);
                }
            }
            if (options.Stall == SmtpStall.AfterData)
            {
                await FlushAsync();
                await Task.Delay(Timeout.Infinite, Stopping);
            }
            if (options.DataReplyLatency > TimeSpan.Zero)
            {
                // A distant receiver scanning the message before it answers: the client waits, the server's thread does not.
                await FlushAsync();
                await Task.Delay(options.DataReplyLatency, Stopping);
            }
            var transaction = server.TransactionCount + 1;
            var verdict = options.MaxSize is { } max && size > max
                ? new SmtpServerReply(552, "5.3.4", "message too big")
                : server.ThrottleAt(SmtpThrottleStage.Data) ?? options.OnDataEnd?.Invoke(new SmtpDataContext(number, transaction, recipients.ToArray(), size, tls is not null));
            if (verdict is not null)
            {
                ReplyChosen(verdict);
            }
            else
            {
                transaction = Interlocked.Increment(ref server.transactionCount);
                Interlocked.Increment(ref server.messagesAccepted);
                server.CountForThrottle();
                if (data is not null)
                {
                    server.messages.Enqueue(new ReceivedSmtpMessage(mailFrom, mailParameters, recipients.ToArray(), data.ToArray(), tls is not null, tls?.SslProtocol ?? SslProtocols.None, number, transaction));
                }
                Reply($"250 2.0.0 queued as {number}.{transaction}\r\n");
            }
            ResetTransaction();
        }

        private void Authenticate(string argument)
        {
            // RFC 4954 with RFC 4616 PLAIN: "AUTH PLAIN base64(authzid NUL user NUL password)", over TLS only.
            var parts = argument.Split(' ', 2);
            if (options.Credentials is not { } expected || tls is null || !parts[0].Equals("PLAIN", StringComparison.OrdinalIgnoreCase) || parts.Length < 2)
            {
                Reply("504 5.5.4 AUTH PLAIN over TLS only\r\n");
                return;
            }
            string[] fields;
            try
            {
                fields = Encoding.UTF8.GetString(Convert.FromBase64String(parts[1])).Split('\0');
            }
            catch (FormatException)
            {
                Reply("501 5.5.2 bad base64\r\n");
                return;
            }
            if (fields.Length == 3 && fields[1] == expected.User && fields[2] == expected.Password)
            {
                authenticated = true;
                Reply("235 2.7.0 authenticated\r\n");
            }
            else
            {
                Reply("535 5.7.8 authentication credentials invalid\r\n");
            }
        }

        private void ResetTransaction()
        {
            mailFrom = null;
            mailParameters = [];
            recipients.Clear();
            rcptCommands = 0;
        }

        private static bool TryPath(string argument, string prefix, out string path, out List<string> parameters)
        {
            path = string.Empty;
            parameters = [];
            if (!argument.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
            var rest = argument[prefix.Length..].TrimStart();
            if (!rest.StartsWith('<'))
            {
                return false;
            }
            var close = rest.IndexOf('>', StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }
            path = rest[1..close];
            parameters = rest[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
            return true;
        }

        private void Reply(string text) => output.Write(Encoding.UTF8.GetBytes(text));

        /// <summary>A reply the test chose; after a 421 the connection is closed (RFC 5321 §3.8).</summary>
        private void ReplyChosen(SmtpServerReply reply)
        {
            Reply(reply.Format());
            closing = reply.Code == 421;
        }

        /// <summary>Greets with 554 and waits for QUIT, answering anything else with 503 (RFC 5321 §3.1).</summary>
        private async Task RefuseUntilQuitAsync()
        {
            Reply("554 5.7.1 no SMTP service here\r\n");
            await FlushAsync();
            while (await ReadLineAsync() is { } line)
            {
                if (Encoding.ASCII.GetString(line).Trim().Equals("QUIT", StringComparison.OrdinalIgnoreCase))
                {
                    Interlocked.Increment(ref server.quitCount);
                    Reply("221 2.0.0 bye\r\n");
                    await FlushAsync();
                    return;
                }
                Reply("503 5.5.1 bad sequence of commands\r\n");
                await FlushAsync();
            }
        }

        /// <summary>"220 " and 10 MB without a line end, from one small buffer, then silence.</summary>
        private async Task SendHugeLineAsync()
        {
            var chunk = new byte[64 * 1024];
            Array.Fill(chunk, (byte)'x');
            "220 "u8.CopyTo(chunk);
            for (var sent = 0; sent < 10 * 1024 * 1024; sent += chunk.Length)
            {
                await stream.WriteAsync(chunk, Stopping);
                chunk.AsSpan(0, 4).Fill((byte)'x');
            }
            await Task.Delay(Timeout.Infinite, Stopping);
        }

        /// <summary>Continuation lines of the EHLO reply for as long as the client reads them.</summary>
        private async Task SendEndlessReplyAsync()
        {
            output.SetLength(0);
            var chunk = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("250-x\r\n", 8192)));
            while (true)
            {
                await stream.WriteAsync(chunk, Stopping);
            }
        }

        private async Task FlushAsync()
        {
            if (output.Length == 0)
            {
                return;
            }
            if (options.Hostility == SmtpHostility.Tarpit)
            {
                await Task.Delay(options.HostileInterval, Stopping);
            }
            if (options.Hostility == SmtpHostility.Drip)
            {
                for (var i = 0; i < output.Length; i++)
                {
                    await stream.WriteAsync(output.GetBuffer().AsMemory(i, 1), Stopping);
                    await Task.Delay(options.HostileInterval, Stopping);
                }
                output.SetLength(0);
                return;
            }
            await stream.WriteAsync(output.GetBuffer().AsMemory(0, (int)output.Length), Stopping);
            await stream.FlushAsync(Stopping);
            output.SetLength(0);
        }

        /// <summary>Reads one CRLF- (or LF-) terminated line without its terminator; null at end of stream.</summary>
        private async Task<byte[]?> ReadLineAsync(bool unlimited = false)
        {
            List<byte>? longLine = null;
            while (true)
            {
                var newline = Array.IndexOf(input, (byte)'\n', start, end - start);
                if (newline >= 0)
                {
                    var length = newline - start;
                    if (length > 0 && input[newline - 1] == '\r')
                    {
                        length--;
                    }
                    var line = input.AsSpan(start, length).ToArray();
                    start = newline + 1;
                    if (longLine is not null)
                    {
                        longLine.AddRange(line);
                        return [.. longLine];
                    }
                    return line;
                }
                if (start > 0)
                {
                    Buffer.BlockCopy(input, start, input, 0, end - start);
                    end -= start;
                    start = 0;
                }
                if (end == input.Length)
                {
                    // A line longer than the buffer: keep it for DATA, drop it for commands (it gets a 500).
                    longLine ??= [];
                    if (unlimited || longLine.Count <= MaxLineLength)
                    {
                        longLine.AddRange(input.AsSpan(0, end).ToArray());
                    }
                    end = 0;
                }
                var read = await stream.ReadAsync(input.AsMemory(end), Stopping);
                if (read == 0)
                {
                    return null;
                }
                end += read;
            }
        }
    }
}
