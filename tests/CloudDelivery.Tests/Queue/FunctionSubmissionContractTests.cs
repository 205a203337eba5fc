using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Functions;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// The Functions app's submission trigger (the real <see cref="DeliveryFunctions"/> on the ASP.NET Core
/// integration) against the HTTP contract <c>serve</c> passes in <see cref="SubmissionContractTests"/>:
/// every submission both can receive is put to both hosts, on the same Azurite, and both must answer it
/// alike, with the same status and the same error code — the one shared handler, seen from outside.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class FunctionSubmissionContractTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private QueueWorld world = null!;
    private Microsoft.AspNetCore.Builder.WebApplication serve = null!;
    private HttpClient http = null!;
    private string caFile = null!;

    public async Task InitializeAsync()
    {
        world = await QueueWorld.StartAsync(azurite);
        caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Network.Pki.RootPem);
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world.Network, azurite.ConnectionString, world.Storage, caFile);
        settings["Logging:LogLevel:Default"] = "Warning";
        serve = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await serve.StartAsync();
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
    }

    public async Task DisposeAsync()
    {
        http.Dispose();
        await serve.StopAsync();
        await serve.DisposeAsync();
        await world.DisposeAsync();
        File.Delete(caFile);
    }

    private DeliveryFunctions Function() =>
        new(world.Handler, new WakeUpWorker(world.Queue, world.Handler, new WakeUpWorkerOptions()), new SubmissionEndpoint(world.Queue));

    /// <summary>The POSTs to /api/messages among the contract's odd requests: the function's whole route.</summary>
    public static TheoryData<string, string, string?, string> OddSubmissions()
    {
        var data = new TheoryData<string, string, string?, string>();
        foreach (var row in SubmissionContractTests.OddRequests())
        {
            if ((string)row[0] == "POST" && ((string)row[1] == "/api/messages" || ((string)row[1]).StartsWith("/api/messages?", StringComparison.Ordinal)) && row[2] is not null)
            {
                data.Add((string)row[0], (string)row[1], (string?)row[2], (string)row[3]);
            }
        }
        return data;
    }

    [Fact]
    public void The_odd_submissions_cover_both_forms()
    {
        var contentTypes = OddSubmissions().Select(row => (string?)row[2]).ToHashSet();

        Assert.Contains("application/json", contentTypes);
        Assert.Contains("message/rfc822", contentTypes);
        Assert.True(OddSubmissions().Count >= 25);
    }

    [Theory]
    [MemberData(nameof(OddSubmissions))]
    public async Task Odd_submissions_get_the_same_4xx_from_the_function_as_from_serve(string method, string path, string? contentType, string body)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType!);
        var viaServe = await http.SendAsync(request);
        var serveError = ErrorCode(await viaServe.Content.ReadAsByteArrayAsync());

        var viaFunction = await FunctionHttpCall.InvokeAsync(
            FunctionHttpCall.Request(method, path, contentType, Encoding.UTF8.GetBytes(body)),
            r => Function().SubmitMessage(r, CancellationToken.None));

        Assert.InRange(viaFunction.StatusCode, 400, 499);
        Assert.Equal((int)viaServe.StatusCode, viaFunction.StatusCode);
        Assert.Equal(serveError, ErrorCode(viaFunction.Body()));
        Assert.Equal("application/json", viaFunction.ContentType);
    }

    [Theory]
    [InlineData("a@b@victim.example")]
    [InlineData("a..b@victim.example")]
    [InlineData("a@[IPv6:::1%25eth0]")]
    [InlineData("a\u200b@victim.example")]
    public async Task Addresses_smtp_cannot_carry_get_400_from_the_function_in_both_forms(string address)
    {
        var viaQuery = await FunctionHttpCall.InvokeAsync(
            FunctionHttpCall.Request("POST", $"/api/messages?from=s@sender.example&to={Uri.EscapeDataString(address)}", "message/rfc822", "Subject: x\r\n\r\nhi\r\n"),
            r => Function().SubmitMessage(r, CancellationToken.None));
        var json = JsonSerializer.Serialize(new { from = "s@sender.example", to = new[] { address }, message = Convert.ToBase64String("Subject: x\r\n\r\nhi\r\n"u8.ToArray()) });
        var viaJson = await FunctionHttpCall.InvokeAsync(
            FunctionHttpCall.Request("POST", "/api/messages", "application/json", json),
            r => Function().SubmitMessage(r, CancellationToken.None));

        Assert.Equal(400, viaQuery.StatusCode);
        Assert.Equal(400, viaJson.StatusCode);
        Assert.Equal("invalid-recipient", ErrorCode(viaQuery.Body()));
    }

    [Fact]
    public async Task A_json_submission_through_the_function_is_queued_and_delivered()
    {
        world.Network.Zone.AddMx("fn-json.example", 10, "mx.fn-json.example");
        var mx = await world.Network.AddMxServerAsync("mx.fn-json.example");
        var json = JsonSerializer.Serialize(new { from = "s@sender.example", to = new[] { "r@fn-json.example" }, message = Convert.ToBase64String("Subject: json\r\n\r\nhi\r\n"u8.ToArray()) });

        var response = await FunctionHttpCall.InvokeAsync(
            FunctionHttpCall.Request("POST", "/api/messages", "application/json; charset=utf-8", json),
            r => Function().SubmitMessage(r, CancellationToken.None));
        await Function().DeliverDomain(new WakeUp("fn-json.example").ToJson(), CancellationToken.None);
        // serve's worker shares the storage and may hold the domain's lease first: either delivers it once.
        await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));

        Assert.Equal(202, response.StatusCode);
        Assert.Equal(["r@fn-json.example"], Assert.Single(mx.Messages).Recipients);
    }

    private static string? ErrorCode(byte[] body)
    {
        using var json = JsonDocument.Parse(body);
        return json.RootElement.TryGetProperty("error", out var error) ? error.GetString() : null;
    }
}
