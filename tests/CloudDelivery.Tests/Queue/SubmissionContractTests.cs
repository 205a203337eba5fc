using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// The HTTP contract of <c>serve</c> for any input: client mistakes get a 4xx with an error code, storage
/// trouble a 503 with Retry-After, nothing a 500; and an address no SMTP server can carry is refused at the
/// door instead of blocking its domain later.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class SubmissionContractTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private LoopbackWorld world = null!;
    private Microsoft.AspNetCore.Builder.WebApplication app = null!;
    private HttpClient http = null!;
    private CloudDelivery.Loopback.Smtp.LoopbackSmtpServer mx = null!;
    private string caFile = null!;
    private int port;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("victim.example", 10, "mx.victim.example");
        mx = await world.AddMxServerAsync("mx.victim.example");
        caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var storage = await azurite.NewStorageAsync();
        port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["Logging:LogLevel:Default"] = "Warning";
        settings["CloudDelivery:Queue:WakeUpWindow"] = "00:00:00";
        app = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await app.StartAsync();
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
    }

    public async Task DisposeAsync()
    {
        http.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
        await world.DisposeAsync();
        File.Delete(caFile);
    }

    private static StringContent Raw(string to) => new($"From: <s@sender.example>\r\nTo: <{to}>\r\nSubject: x\r\n\r\nbody\r\n", Encoding.UTF8, "message/rfc822");

    [Fact]
    public async Task An_address_with_two_at_signs_is_refused_naming_it_and_the_domain_keeps_delivering()
    {
        using var hostile = Raw("a@b@victim.example");
        var refused = await http.PostAsync("/api/messages?from=s@sender.example&to=a@b@victim.example", hostile);

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("invalid-recipient", error.RootElement.GetProperty("error").GetString());
        Assert.Contains("a@b@victim.example", error.RootElement.GetProperty("message").GetString(), StringComparison.Ordinal);

        using var valid = Raw("ok@victim.example");
        Assert.Equal(HttpStatusCode.Accepted, (await http.PostAsync("/api/messages?from=s@sender.example&to=ok@victim.example", valid)).StatusCode);
        await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));
        Assert.Equal(["ok@victim.example"], Assert.Single(mx.Messages).Recipients);
    }

    [Theory]
    [InlineData("a@b@victim.example")]
    [InlineData("\"unterminated@victim.example")]
    [InlineData("a..b@victim.example")]
    [InlineData("a b@victim.example")]
    [InlineData("a@victim.example.")]
    [InlineData("a@[1]")]
    [InlineData("a@[IPv6:::1%25eth0]")]
    [InlineData("a\u200b@victim.example")]
    public async Task Addresses_smtp_cannot_carry_get_400_in_both_forms(string address)
    {
        using var raw = Raw("x@victim.example");
        var viaQuery = await http.PostAsync($"/api/messages?from=s@sender.example&to={Uri.EscapeDataString(address)}", raw);
        using var json = new StringContent(JsonSerializer.Serialize(new { from = "s@sender.example", to = new[] { address }, message = Convert.ToBase64String("Subject: x\r\n\r\nhi\r\n"u8.ToArray()) }), Encoding.UTF8, "application/json");
        var viaJson = await http.PostAsync("/api/messages", json);

        Assert.Equal(HttpStatusCode.BadRequest, viaQuery.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, viaJson.StatusCode);
    }

    /// <summary>Bodies and paths a client may get wrong; each must get a 4xx, never a 5xx.</summary>
    public static TheoryData<string, string, string?, string> OddRequests()
    {
        var message = Convert.ToBase64String("Subject: x\r\n\r\nhi\r\n"u8.ToArray());
        var data = new TheoryData<string, string, string?, string>
        {
            { "POST", "/api/messages", "application/json", "{\"to\":[null]}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[null],\"message\":\"{message}\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":null,\"to\":[\"r@victim.example\"],\"message\":\"{message}\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":1,\"to\":[\"r@victim.example\"],\"message\":\"{message}\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":\"r@victim.example\",\"message\":\"{message}\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[1,{{}}],\"message\":\"{message}\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":5}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":\"{message}\",\"requireTls\":\"yes\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":\"not base64!\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":\"\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[],\"message\":\"{message}\"}}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":\"{message}" },
            { "POST", "/api/messages", "application/json", $"{{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":\"{message}\"}} trailing" },
            { "POST", "/api/messages", "application/json", "null" },
            { "POST", "/api/messages", "application/json", "[]" },
            { "POST", "/api/messages", "application/json", "\"text\"" },
            { "POST", "/api/messages", "application/json", "" },
            { "POST", "/api/messages", "application/json", new string('[', 5000) },
            { "POST", "/api/messages", "application/json", "{\"from\":\"\\ud800@x\",\"to\":[\"r@victim.example\"],\"message\":\"\"}" },
            { "POST", "/api/messages", "application/json; charset=utf-16", "{}" },
            { "POST", "/api/messages", "image/png", "x" },
            { "POST", "/api/messages", "message/rfc822", string.Empty },
            { "POST", "/api/messages?from=s@sender.example", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=s@sender.example&to=", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=s@sender.example&to=,,,", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=%00&to=r@victim.example", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=<<s@sender.example>>&to=r@victim.example", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=s@sender.example&to=r@victim.example&requiretls=1&tlsrequiredno=1", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", $"/api/messages?from=s@sender.example&to={new string('a', 300)}@victim.example", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=s@sender.example&to=r@-bad-.example", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages?from=s@sender.example&to=r@xn--zz.example", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "POST", "/api/messages/extra", "message/rfc822", "Subject: x\r\n\r\nx\r\n" },
            { "GET", "/api/messages", null, string.Empty },
            { "GET", "/api/messages/", null, string.Empty },
            { "GET", "/api/messages/a/b/c", null, string.Empty },
            { "GET", "/api/messages/a/b", null, string.Empty },
            { "GET", "/api/messages/nope", null, string.Empty },
            { "GET", "/api/messages/%2E%2E", null, string.Empty },
            { "GET", "/api/messages/%2E%2E/%2E%2E", null, string.Empty },
            { "GET", "/api/messages/victim.example/..", null, string.Empty },
            { "GET", "/api/messages/%00", null, string.Empty },
            { "GET", "/api/messages/a%2Fb%2Fc", null, string.Empty },
            { "GET", "/api/messages/a%5Cb", null, string.Empty },
            { "GET", "/api/messages/a%23b", null, string.Empty },
            { "GET", "/api/messages/a%3Fb", null, string.Empty },
            { "GET", "/api/messages/%C3%A9%E2%82%AC%F0%9F%92%A9", null, string.Empty },
            { "GET", "/api/messages/victim.example/%C3%A9", null, string.Empty },
            { "GET", "/api/messages/" + new string('a', 4000), null, string.Empty },
            { "GET", "/api/messages/victim.example/" + new string('a', 4000), null, string.Empty },
            { "GET", "/api/messages/x'%20or%20'1'%20eq%20'1", null, string.Empty },
            { "GET", "/api/messages/%20/%20", null, string.Empty },
            { "DELETE", "/api/messages/a", null, string.Empty },
        };
        return data;
    }

    [Theory]
    [MemberData(nameof(OddRequests))]
    public async Task Odd_requests_get_a_4xx_never_a_5xx(string method, string path, string? contentType, string body)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (contentType is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        }

        var response = await http.SendAsync(request);

        Assert.InRange((int)response.StatusCode, 400, 499);
    }

    [Fact]
    public async Task Huge_and_many_headers_get_a_4xx()
    {
        using var huge = new HttpRequestMessage(HttpMethod.Post, "/api/messages?from=s@sender.example&to=r@victim.example") { Content = Raw("r@victim.example") };
        huge.Headers.TryAddWithoutValidation("X-Huge", new string('h', 64 * 1024));
        using var many = new HttpRequestMessage(HttpMethod.Post, "/api/messages?from=s@sender.example&to=r@victim.example") { Content = Raw("r@victim.example") };
        for (var i = 0; i < 500; i++)
        {
            many.Headers.TryAddWithoutValidation($"X-Many-{i}", "v");
        }

        Assert.InRange((int)(await http.SendAsync(huge)).StatusCode, 400, 499);
        Assert.InRange((int)(await http.SendAsync(many)).StatusCode, 400, 499);
    }

    [Theory]
    [InlineData("application/json", "{\"from\":\"s@sender.example\",\"to\":[\"r@victim.example\"],\"message\":\"U3ViamVjdDogeA0KDQp4DQo=\"}")]
    [InlineData("message/rfc822", "Subject: x\r\n\r\nx\r\n")]
    public async Task A_body_shorter_than_its_content_length_gets_a_4xx_or_a_close_never_a_5xx(string contentType, string body)
    {
        // Content-Length promises more than is sent; the client then stops sending (half-close).
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        var bytes = Encoding.UTF8.GetBytes(body);
        var head = $"POST /api/messages?from=s@sender.example&to=r@victim.example HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {contentType}\r\nContent-Length: {bytes.Length + 1000}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(bytes);
        client.Client.Shutdown(SocketShutdown.Send);

        var answer = await ReadAllAsync(stream, TimeSpan.FromSeconds(30));

        Assert.DoesNotContain("HTTP/1.1 5", answer, StringComparison.Ordinal);
        Assert.DoesNotContain("HTTP/1.1 2", answer, StringComparison.Ordinal);
    }

    private static async Task<string> ReadAllAsync(NetworkStream stream, TimeSpan bound)
    {
        using var timeout = new CancellationTokenSource(bound);
        var buffer = new byte[4096];
        var text = new StringBuilder();
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                text.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
        }
        catch (IOException)
        {
            // A reset after the answer is fine: what was answered is what counts.
        }
        return text.ToString();
    }
}
