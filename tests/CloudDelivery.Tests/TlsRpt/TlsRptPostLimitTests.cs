using System.Diagnostics;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.TlsRpt.Https;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.TlsRpt;

/// <summary>
/// A report's "https:" destination is chosen by whoever publishes the TLSRPT record: a receiver that never
/// answers, or answers without end, must cost one bounded POST and no more.
/// </summary>
public class TlsRptPostLimitTests
{
    [Fact]
    public async Task A_receiver_that_takes_the_report_and_never_answers_fails_within_the_post_deadline()
    {
        await using var world = await LoopbackWorld.StartAsync();
        await using var receiver = await StartReceiverAsync(world, "stall.loopback.test", async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
        var poster = Poster(world, TimeSpan.FromSeconds(2));
        var clock = Stopwatch.StartNew();

        var error = await poster.PostAsync(new Uri($"https://stall.loopback.test:{receiver.Port}/tlsrpt"), [1, 2, 3], CancellationToken.None);

        Assert.NotNull(error);
        Assert.Contains("timed out", error, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_receiver_that_answers_200_with_an_endless_body_is_a_success_without_reading_the_body()
    {
        await using var world = await LoopbackWorld.StartAsync();
        await using var receiver = await StartReceiverAsync(world, "endless.loopback.test", async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            context.Response.StatusCode = 200;
            var filler = new byte[64 * 1024];
            while (!context.RequestAborted.IsCancellationRequested)
            {
                await context.Response.Body.WriteAsync(filler, context.RequestAborted);
            }
        });
        var poster = Poster(world, TimeSpan.FromSeconds(10));

        // The body would never end: waiting for it (as a buffered read does) runs into the deadline.
        var error = await poster.PostAsync(new Uri($"https://endless.loopback.test:{receiver.Port}/tlsrpt"), [1, 2, 3], CancellationToken.None);

        Assert.Null(error);
    }

    private static TlsRptHttpsPoster Poster(LoopbackWorld world, TimeSpan timeout) =>
        new(new DnsResolver(new DnsResolverOptions { Server = world.Dns.EndPoint, QueryTimeout = TimeSpan.FromSeconds(2), Retries = 0 }), AddressPolicy.AllowPrivate, [world.Pki.Root]) { Timeout = timeout };

    private static async Task<Receiver> StartReceiverAsync(LoopbackWorld world, string host, RequestDelegate handler)
    {
        var address = LoopbackWorld.NewAddress();
        world.Zone.AddA(host, address.ToString());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var certificate = world.Pki.Issue([host]);
        builder.WebHost.ConfigureKestrel(k => k.Listen(address, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.UseHttps(certificate);
        }));
        var app = builder.Build();
        app.MapPost("/tlsrpt", handler);
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        return new Receiver(app, port);
    }

    private sealed class Receiver(WebApplication app, int port) : IAsyncDisposable
    {
        public int Port { get; } = port;

        public async ValueTask DisposeAsync()
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await app.StopAsync(stop.Token);
            await app.DisposeAsync();
        }
    }
}
