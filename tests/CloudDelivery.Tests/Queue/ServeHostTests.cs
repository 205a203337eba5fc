using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Queue;

/// <summary>The <c>serve</c> host end to end: HTTP submission → Azurite → worker → loopback MX → status.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class ServeHostTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private LoopbackWorld world = null!;
    private Microsoft.AspNetCore.Builder.WebApplication app = null!;
    private HttpClient http = null!;
    private CloudDelivery.Loopback.Smtp.LoopbackSmtpServer mx = null!;
    private string caFile = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("served.example", 10, "mx.served.example");
        mx = await world.AddMxServerAsync("mx.served.example");
        caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var storage = await azurite.NewStorageAsync();
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["Logging:LogLevel:Default"] = "Warning";
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

    [Fact]
    public async Task Raw_submission_is_accepted_delivered_and_reported_by_status()
    {
        var message = "From: <s@sender.example>\r\nTo: <r@served.example>\r\nSubject: served\r\n\r\nvia serve\r\n";
        using var content = new StringContent(message, Encoding.UTF8, "message/rfc822");

        var response = await http.PostAsync("/api/messages?from=s@sender.example&to=r@served.example", content);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        using var accepted = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var id = accepted.RootElement.GetProperty("recipients")[0].GetProperty("id").GetString()!;
        await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));
        Assert.Equal(message, Encoding.UTF8.GetString(Assert.Single(mx.Messages).Data));
        string state;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        do
        {
            using var status = JsonDocument.Parse(await http.GetStringAsync($"/api/messages/{id}"));
            state = status.RootElement[0].GetProperty("state").GetString()!;
        }
        while (state != "delivered" && DateTime.UtcNow < deadline);
        Assert.Equal("delivered", state);
    }

    [Fact]
    public async Task Json_submission_with_base64_message_is_accepted()
    {
        var response = await http.PostAsJsonAsync("/api/messages", new { from = "s@sender.example", to = new[] { "j@served.example" }, message = Convert.ToBase64String("Subject: json\r\n\r\nhi\r\n"u8.ToArray()) });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Oversized_json_body_is_refused_with_413_without_being_buffered_whole()
    {
        // 30 MB of base64 without a Content-Length: more than the JSON form's 10 MiB cap, so reading stops at
        // that cap (Kestrel discards the rest, within its body limit, and the client reads the answer).
        using var content = new StreamContent(new RepeatingStream("{\"from\":\"s@sender.example\",\"to\":[\"r@served.example\"],\"message\":\""u8.ToArray(), (byte)'A', 30_000_000));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        var response = await http.PostAsync("/api/messages", content);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    /// <summary>A prefix followed by one byte repeated, produced as it is read.</summary>
    private sealed class RepeatingStream(byte[] prefix, byte fill, long length) : Stream
    {
        private long position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - position);
            for (var i = 0; i < n; i++, position++)
            {
                buffer[offset + i] = position < prefix.Length ? prefix[position] : fill;
            }
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData("/api/messages?from=s@sender.example&to=not%20an%20address", "message/rfc822", 400, "invalid-recipient")]
    [InlineData("/api/messages?to=r@served.example", "message/rfc822", 400, "missing-sender")]
    [InlineData("/api/messages?from=s@sender.example&to=r@served.example", "image/png", 415, "unsupported-media-type")]
    [InlineData("/api/messages", "application/json", 400, "invalid-json")]
    public async Task Client_mistakes_get_a_4xx_with_an_error_code(string path, string contentType, int status, string error)
    {
        using var content = new StringContent("Subject: x\r\n\r\nbody\r\n", Encoding.UTF8, contentType);

        var response = await http.PostAsync(path, content);

        Assert.Equal(status, (int)response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(error, json.RootElement.GetProperty("error").GetString());
    }
}
