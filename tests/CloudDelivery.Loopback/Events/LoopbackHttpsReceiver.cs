using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace CloudDelivery.Loopback.Events;

/// <summary>One HTTP request as a loopback receiver read it: header names lower-cased, the whole body.</summary>
public sealed record ReceivedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var value) ? value : null;
}

/// <summary>How a loopback receiver answers one request.</summary>
public enum ReplyKind
{
    /// <summary>The status and a short body with Content-Length.</summary>
    Normal,

    /// <summary>Read the request, then never answer (until the client goes or the server stops).</summary>
    Stall,

    /// <summary>The status, then a body without Content-Length that never ends.</summary>
    EndlessBody,
}

/// <summary>A receiver's answer.</summary>
public sealed record ReceiverReply(int Status, string Body = "", ReplyKind Kind = ReplyKind.Normal)
{
    public static readonly ReceiverReply Ok = new(200);
}

/// <summary>
/// An HTTPS/1.1 server on a loopback address with one certificate (from the test PKI), one request per
/// connection, handing each request to a handler. Heads are capped at 16 KiB and bodies at
/// <see cref="MaxBodyBytes"/> (a larger one gets 413, as Event Grid answers); chunked bodies get 411.
/// </summary>
public sealed class LoopbackHttpsReceiver : IAsyncDisposable
{
    /// <summary>Largest request body read: above Event Grid's 1 MB limit, so a stand-in can refuse it itself.</summary>
    public const int MaxBodyBytes = 4 * 1024 * 1024;

    private const int MaxHeadBytes = 16 * 1024;

    private readonly TcpListener listener;
    private readonly X509Certificate2 certificate;
    private readonly Func<ReceivedRequest, Task<ReceiverReply>> handler;
    private readonly CancellationTokenSource stopping = new();
    private readonly Task acceptLoop;

    public LoopbackHttpsReceiver(IPAddress address, X509Certificate2 certificate, Func<ReceivedRequest, Task<ReceiverReply>> handler)
    {
        this.certificate = certificate;
        this.handler = handler;
        listener = new TcpListener(address, 0);
        listener.Start();
        EndPoint = (IPEndPoint)listener.LocalEndpoint;
        acceptLoop = Task.Run(() => AcceptLoop.RunAsync(listener, socket => ServeAsync(new NetworkStream(socket, ownsSocket: false)), stopping.Token));
    }

    public IPEndPoint EndPoint { get; }

    private async Task ServeAsync(NetworkStream network)
    {
        await using var tls = new SslStream(network, leaveInnerStreamOpen: false);
        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificate = certificate,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        }, stopping.Token);
        var (request, refusal) = await ReadRequestAsync(tls);
        var reply = refusal ?? await handler(request!);
        await WriteReplyAsync(tls, reply);
    }

    private async Task<(ReceivedRequest? Request, ReceiverReply? Refusal)> ReadRequestAsync(Stream stream)
    {
        var buffer = new byte[MaxHeadBytes];
        var length = 0;
        int headEnd;
        while ((headEnd = IndexOfHeadEnd(buffer, length)) < 0)
        {
            if (length == buffer.Length)
            {
                return (null, new ReceiverReply(431, "head too large"));
            }
            var read = await stream.ReadAsync(buffer.AsMemory(length), stopping.Token);
            if (read == 0)
            {
                throw new EndOfStreamException("client closed before the end of the head");
            }
            length += read;
        }
        var lines = Encoding.ASCII.GetString(buffer, 0, headEnd).Split("\r\n");
        var requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
            }
        }
        if (headers.ContainsKey("transfer-encoding"))
        {
            return (null, new ReceiverReply(411, "Content-Length required"));
        }
        var contentLength = headers.TryGetValue("content-length", out var declared) && int.TryParse(declared, out var parsed) ? parsed : 0;
        if (contentLength > MaxBodyBytes)
        {
            return (null, new ReceiverReply(413, "request too large"));
        }
        var body = new byte[contentLength];
        var already = Math.Min(length - (headEnd + 4), contentLength);
        buffer.AsSpan(headEnd + 4, already).CopyTo(body);
        await stream.ReadExactlyAsync(body.AsMemory(already), stopping.Token);
        return (new ReceivedRequest(requestLine[0], requestLine.Length > 1 ? requestLine[1] : "/", headers, body), null);
    }

    private static int IndexOfHeadEnd(byte[] buffer, int length) => buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8);

    private async Task WriteReplyAsync(Stream stream, ReceiverReply reply)
    {
        switch (reply.Kind)
        {
            case ReplyKind.Stall:
                // Ends when the server stops; the client's deadline is what is under test.
                await Task.Delay(Timeout.Infinite, stopping.Token);
                return;
            case ReplyKind.EndlessBody:
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {reply.Status} Whatever\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"), stopping.Token);
                var filler = new byte[16 * 1024];
                while (!stopping.IsCancellationRequested)
                {
                    await stream.WriteAsync(filler, stopping.Token);
                }
                return;
            default:
                var body = Encoding.UTF8.GetBytes(reply.Body);
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {reply.Status} Whatever\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), stopping.Token);
                await stream.WriteAsync(body, stopping.Token);
                await stream.FlushAsync(stopping.Token);
                return;
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
}
