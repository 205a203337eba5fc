using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.TlsRpt;

/// <summary>A TLSRPT "https:" rua endpoint on loopback (Kestrel with a test-CA certificate) that keeps what is posted.</summary>
internal sealed class ReportCollector : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly List<(string? ContentType, byte[] Body)> posts = [];
    private int failuresLeft;

    private ReportCollector(WebApplication app, int port)
    {
        this.app = app;
        Port = port;
    }

    public int Port { get; }

    public IReadOnlyList<(string? ContentType, byte[] Body)> Posts
    {
        get
        {
            lock (posts)
            {
                return posts.ToArray();
            }
        }
    }

    /// <summary>The next <paramref name="count"/> posts are answered 503.</summary>
    public void FailNext(int count) => failuresLeft = count;

    public static async Task<ReportCollector> StartAsync(IPAddress address, X509Certificate2 certificate)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(address, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.UseHttps(certificate);
        }));
        var app = builder.Build();
        ReportCollector? collector = null;
        app.MapPost("/tlsrpt", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            if (Interlocked.Decrement(ref collector!.failuresLeft) >= 0)
            {
                return Results.StatusCode(503);
            }
            lock (collector.posts)
            {
                collector.posts.Add((request.ContentType, body.ToArray()));
            }
            return Results.Ok();
        });
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        collector = new ReportCollector(app, port);
        return collector;
    }

    public async ValueTask DisposeAsync() => await app.DisposeAsync();
}
