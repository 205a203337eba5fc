using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Queue;

/// <summary>Storage that cannot be reached is the service's trouble, not the client's: 503 with Retry-After, soon.</summary>
public sealed class StorageOutageTests : IAsyncLifetime
{
    private LoopbackWorld world = null!;
    private Microsoft.AspNetCore.Builder.WebApplication app = null!;
    private HttpClient http = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        // Azurite's well-known development key, at a port where nothing listens.
        var dead = $"http://127.0.0.1:{LoopbackWorld.FreePort()}/devstoreaccount1";
        var connection = $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint={dead};QueueEndpoint={dead};TableEndpoint={dead};";
        var port = LoopbackWorld.FreePort();
        app = ServeCommand.Build($"http://127.0.0.1:{port}", new Dictionary<string, string?>
        {
            ["CloudDelivery:Hostname"] = "mta.loopback.test",
            ["CloudDelivery:Storage:ConnectionString"] = connection,
            ["CloudDelivery:Delivery:Resolver"] = world.Dns.EndPoint.ToString(),
            ["Logging:LogLevel:Default"] = "None",
        });
        await app.StartAsync();
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public async Task DisposeAsync()
    {
        http.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
        await world.DisposeAsync();
    }

    [Theory]
    [InlineData("message/rfc822")]
    [InlineData("application/json")]
    public async Task A_submission_during_a_storage_outage_gets_503_with_retry_after_within_a_bound(string contentType)
    {
        var message = "From: <s@sender.example>\r\nTo: <r@dest.example>\r\nSubject: outage\r\n\r\nbody\r\n";
        using var content = contentType == "application/json"
            ? new StringContent(JsonSerializer.Serialize(new { from = "s@sender.example", to = new[] { "r@dest.example" }, message = Convert.ToBase64String(Encoding.UTF8.GetBytes(message)) }), Encoding.UTF8, contentType)
            : new StringContent(message, Encoding.UTF8, contentType);
        var clock = Stopwatch.StartNew();

        var response = await http.PostAsync("/api/messages?from=s@sender.example&to=r@dest.example", content);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("storage-unavailable", error.RootElement.GetProperty("error").GetString());
        // A bound, not a speed: the SDK's retries against a refused port end well within this.
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_status_lookup_during_a_storage_outage_gets_503_with_retry_after()
    {
        var response = await http.GetAsync("/api/messages/dest.example/0123456789abcdef0123456789abcdef.0000");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
    }
}
