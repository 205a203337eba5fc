using System.Net;
using System.Text;
using System.Text.Json;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Suppression;

/// <summary>/api/suppressions on <c>serve</c>'s Kestrel, and its effect on POST /api/messages there.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class SuppressionServeHostTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Serve_maps_the_api_and_its_submissions_answer_suppressed_recipients()
    {
        await using var world = await LoopbackWorld.StartAsync();
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var storage = await azurite.NewStorageAsync();
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["CloudDelivery:Storage:SuppressionsTable"] = storage.Options.SuppressionsTable;
        settings["Logging:LogLevel:Default"] = "Warning";
        await using var app = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        try
        {
            // A '/' in the local part travels as %2F, which the route leaves escaped.
            using var put = new StringContent("""{"scope": "sender.example", "reason": "unsubscribed"}""", Encoding.UTF8, "application/json");
            Assert.Equal(HttpStatusCode.Created, (await http.PutAsync("/api/suppressions/a%2Fb@served.example", put)).StatusCode);
            var found = await http.GetStringAsync("/api/suppressions/A%2FB@served.example?scope=sender.example");
            Assert.Equal("a/b@served.example", JsonDocument.Parse(found).RootElement.GetProperty("address").GetString());

            using var message = new StringContent("Subject: served\r\n\r\nhi\r\n", Encoding.UTF8, "message/rfc822");
            var submitted = await http.PostAsync("/api/messages?from=s@sender.example&to=a/b@served.example", message);
            Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
            var recipient = JsonDocument.Parse(await submitted.Content.ReadAsStringAsync()).RootElement.GetProperty("recipients")[0];
            Assert.Equal("suppressed", recipient.GetProperty("status").GetString());
            Assert.Equal("unsubscribed", recipient.GetProperty("reason").GetString());
            var status = await http.GetStringAsync($"/api/messages/{recipient.GetProperty("id").GetString()}");
            Assert.Equal("suppressed", JsonDocument.Parse(status).RootElement[0].GetProperty("state").GetString());

            var listed = JsonDocument.Parse(await http.GetStringAsync("/api/suppressions")).RootElement;
            Assert.Equal(1, listed.GetProperty("entries").GetArrayLength());
            Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/suppressions/nobody")).StatusCode);
            Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/suppressions/a%2Fb@served.example?scope=sender.example")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync("/api/suppressions/a%2Fb@served.example?scope=sender.example")).StatusCode);
            Assert.Contains(CloudDelivery.Azure.Suppression.SuppressionList.RefreshLoopName, await (await http.GetAsync("/healthz")).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        finally
        {
            await app.StopAsync();
            File.Delete(caFile);
        }
    }
}
