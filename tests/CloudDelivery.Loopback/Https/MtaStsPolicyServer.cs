using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudDelivery.Loopback.Pki;

namespace CloudDelivery.Loopback.Https;

/// <summary>How the policy server misbehaves for a domain.</summary>
public enum MtaStsServerBehaviour
{
    Normal,

    /// <summary>301 to another URL (RFC 8461 §3.3 forbids following it).</summary>
    Redirect,

    /// <summary>A body of more than 1 MiB.</summary>
    Oversized,

    /// <summary>Headers, then one byte per second.</summary>
    Slow,

    /// <summary>The status line and headers one byte per second (every byte resets an idle timeout).</summary>
    SlowHeaders,

    /// <summary>200 without Content-Length, then a body that never ends (until the client goes).</summary>
    Endless,

    NotFound,

    ServerError,

    /// <summary>The policy served as text/html.</summary>
    WrongContentType,
}

/// <summary>
/// An HTTPS server on loopback serving https://mta-sts.&lt;domain&gt;/.well-known/mta-sts.txt for any number
/// of domains, choosing the certificate by SNI, and misbehaving on request. HTTP/1.1, one request per
/// connection.
/// </summary>
public sealed class MtaStsPolicyServer : IAsyncDisposable
{
    private readonly TcpListener listener;
    private readonly CancellationTokenSource stopping = new();
    private readonly ConcurrentDictionary<string, (string Policy, X509Certificate2 Certificate, MtaStsServerBehaviour Behaviour)> domains = new(StringComparer.OrdinalIgnoreCase);
    private readonly X509Certificate2 fallbackCertificate = TestPki.SelfSigned("unknown.mta-sts.invalid");
    private readonly Task acceptLoop;
    private int requestCount;

    private MtaStsPolicyServer(TcpListener listener)
    {
        this.listener = listener;
        EndPoint = (IPEndPoint)listener.LocalEndpoint;
        acceptLoop = Task.Run(AcceptAsync);
    }

    public IPEndPoint EndPoint { get; }

    public int RequestCount => Volatile.Read(ref requestCount);

    public static Task<MtaStsPolicyServer> StartAsync(IPAddress? address = null, int port = 0, CancellationToken cancellationToken = default)
    {
        var listener = new TcpListener(address ?? IPAddress.Loopback, port);
        listener.Start();
        return Task.FromResult(new MtaStsPolicyServer(listener));
    }

    /// <summary>Serves <paramref name="policyText"/> as the policy of <paramref name="domain"/> with <paramref name="certificate"/>.</summary>
    public void SetPolicy(string domain, string policyText, X509Certificate2 certificate, MtaStsServerBehaviour behaviour = MtaStsServerBehaviour.Normal) =>
        domains[$"mta-sts.{domain.TrimEnd('.')}"] = (policyText, certificate, behaviour);

    private Task AcceptAsync() => AcceptLoop.RunAsync(listener, socket => ServeAsync(new NetworkStream(socket, ownsSocket: false)), stopping.Token);

    private async Task ServeAsync(NetworkStream network)
    {
        await using var tls = new SslStream(network, leaveInnerStreamOpen: false);
        string? host = null;
        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificateSelectionCallback = (_, name) =>
            {
                host = name;
                return name is not null && domains.TryGetValue(name, out var entry) ? entry.Certificate : fallbackCertificate;
            },
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        }, stopping.Token);

        var request = await ReadHeadAsync(tls);
        Interlocked.Increment(ref requestCount);
        var firstLine = request.Split("\r\n", 2)[0].Split(' ');
        var hostHeader = request.Split("\r\n").FirstOrDefault(l => l.StartsWith("Host:", StringComparison.OrdinalIgnoreCase))?[5..].Trim().Split(':')[0];
        host ??= hostHeader;
        if (firstLine.Length < 2 || firstLine[0] != "GET" || firstLine[1] != "/.well-known/mta-sts.txt" || host is null || !domains.TryGetValue(host, out var entry))
        {
            await WriteAsync(tls, "404 Not Found", "text/plain", "not found\n");
            return;
        }
        switch (entry.Behaviour)
        {
            case MtaStsServerBehaviour.Redirect:
                await WriteAsync(tls, "301 Moved Permanently", "text/plain", "moved\n", "Location: https://elsewhere.invalid/.well-known/mta-sts.txt\r\n");
                return;
            case MtaStsServerBehaviour.NotFound:
                await WriteAsync(tls, "404 Not Found", "text/plain", "no policy\n");
                return;
            case MtaStsServerBehaviour.ServerError:
                await WriteAsync(tls, "500 Internal Server Error", "text/plain", "oops\n");
                return;
            case MtaStsServerBehaviour.WrongContentType:
                await WriteAsync(tls, "200 OK", "text/html", entry.Policy);
                return;
            case MtaStsServerBehaviour.Oversized:
                await WriteAsync(tls, "200 OK", "text/plain", entry.Policy + new string('#', 1024 * 1024 + 1));
                return;
            case MtaStsServerBehaviour.Slow:
                var body = Encoding.UTF8.GetBytes(entry.Policy);
                await tls.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), stopping.Token);
                foreach (var b in body)
                {
                    await tls.WriteAsync(new[] { b }, stopping.Token);
                    await tls.FlushAsync(stopping.Token);
                    await Task.Delay(TimeSpan.FromSeconds(1), stopping.Token);
                }
                return;
            case MtaStsServerBehaviour.SlowHeaders:
                foreach (var b in Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"))
                {
                    await tls.WriteAsync(new[] { b }, stopping.Token);
                    await tls.FlushAsync(stopping.Token);
                    await Task.Delay(TimeSpan.FromSeconds(1), stopping.Token);
                }
                return;
            case MtaStsServerBehaviour.Endless:
                await tls.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + entry.Policy), stopping.Token);
                var filler = Encoding.ASCII.GetBytes(new string('#', 16 * 1024));
                // Ends when the client closes (an IOException the accept loop absorbs) or the server stops.
                while (!stopping.IsCancellationRequested)
                {
                    await tls.WriteAsync(filler, stopping.Token);
                }
                return;
            default:
                await WriteAsync(tls, "200 OK", "text/plain", entry.Policy);
                return;
        }
    }

    private async Task<string> ReadHeadAsync(Stream stream)
    {
        var buffer = new byte[8192];
        var length = 0;
        while (length < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(length), stopping.Token);
            if (read == 0)
            {
                break;
            }
            length += read;
            if (Encoding.ASCII.GetString(buffer, 0, length).Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                break;
            }
        }
        return Encoding.ASCII.GetString(buffer, 0, length);
    }

    private async Task WriteAsync(Stream stream, string status, string contentType, string body, string extraHeaders = "")
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var head = Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Type: {contentType}\r\nContent-Length: {bytes.Length}\r\n{extraHeaders}Connection: close\r\n\r\n");
        await stream.WriteAsync(head, stopping.Token);
        await stream.WriteAsync(bytes, stopping.Token);
        await stream.FlushAsync(stopping.Token);
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
        fallbackCertificate.Dispose();
        stopping.Dispose();
    }
}
