using System.Net;
using System.Net.Http.Headers;
using System.Text;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Queue;

/// <summary>Runs alone: it measures what the process allocates, which parallel tests would add to.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryMeasurementCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Memory measurement";
}

/// <summary>
/// The JSON form holds its body once and decodes the base64 in place: a message near the JSON cap costs
/// about one copy of the body, and an oversized one is refused by its Content-Length before it is read.
/// </summary>
[Collection(MemoryMeasurementCollection.Name)]
public sealed class JsonSubmissionMemoryTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private const int MessageBytes = 9 * 1024 * 1024;
    private LoopbackWorld world = null!;
    private Microsoft.AspNetCore.Builder.WebApplication app = null!;
    private HttpClient http = null!;
    private string caFile = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var storage = await azurite.NewStorageAsync();
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["Logging:LogLevel:Default"] = "Warning";
        app = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await app.StartAsync();
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
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
    public async Task A_json_message_near_the_cap_costs_about_one_copy_of_its_body()
    {
        // Warm up with the same size: the first request pays for JIT, connections and the pooled buffers of
        // the upload, which later requests reuse. What is measured is what each further request costs.
        Assert.Equal(HttpStatusCode.Accepted, (await PostAsync(MessageBytes)).StatusCode);
        var before = GC.GetTotalAllocatedBytes(precise: true);

        var response = await PostAsync(MessageBytes);

        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        // The body is 12 MiB of base64 for a 9 MiB message, held once; the blob upload makes its own copy in
        // blocks. Buffering the body, then a string of it, then the decoded bytes cost 11 times the message
        // (105 MB); six times leaves room for the upload and the HTTP stacks on both ends.
        Assert.InRange(allocated, 0, 6L * MessageBytes);
    }

    [Fact]
    public async Task An_oversized_json_body_is_refused_before_it_is_read_and_costs_little()
    {
        var before = GC.GetTotalAllocatedBytes(precise: true);

        var response = await PostAsync(200 * 1024 * 1024, expectContinue: true);

        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.InRange(allocated, 0, 8L * 1024 * 1024);
    }

    /// <summary>A JSON submission of a message of <paramref name="messageBytes"/> zero bytes, generated while it is sent.</summary>
    private async Task<HttpResponseMessage> PostAsync(long messageBytes, bool expectContinue = false)
    {
        var prefix = Encoding.ASCII.GetBytes("{\"from\":\"\",\"to\":[\"r@nowhere.example\"],\"message\":\"");
        var suffix = Encoding.ASCII.GetBytes("\"}");
        // A header of 21 bytes (no base64 padding), then zero bytes ("AAAA" per three).
        var head = Encoding.ASCII.GetBytes(Convert.ToBase64String("Subject: x\r\n\r\nzzzzzzz"u8.ToArray()));
        var base64Length = head.Length + ((messageBytes + 2) / 3 * 4);
        using var content = new StreamContent(new GeneratedStream([.. prefix, .. head], (byte)'A', base64Length - head.Length, suffix));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        content.Headers.ContentLength = prefix.Length + base64Length + suffix.Length;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/messages") { Content = content };
        request.Headers.ExpectContinue = expectContinue;
        return await http.SendAsync(request);
    }

    /// <summary>A prefix, one byte repeated, and a suffix, produced as they are read.</summary>
    private sealed class GeneratedStream(byte[] prefix, byte fill, long fillLength, byte[] suffix) : Stream
    {
        private long position;

        private long Total => prefix.Length + fillLength + suffix.Length;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => Total;

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, Total - position);
            for (var i = 0; i < n; i++, position++)
            {
                buffer[offset + i] = position < prefix.Length ? prefix[position]
                    : position < prefix.Length + fillLength ? fill
                    : suffix[position - prefix.Length - fillLength];
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
}
