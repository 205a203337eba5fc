using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Suppression;
using CloudDelivery.Functions;
using CloudDelivery.Tests.MtaSts;
using CloudDelivery.Tests.Queue;
using Microsoft.AspNetCore.Http;

namespace CloudDelivery.Tests.Suppression;

/// <summary>/api/suppressions through the Functions app's triggers, which call the handlers <c>serve</c> maps.</summary>
[Collection(AzuriteCollection.Name)]
public class SuppressionApiTests(AzuriteFixture azurite)
{
    private async Task<SuppressionFunctions> FunctionsAsync()
    {
        var storage = await azurite.NewStorageAsync();
        return new SuppressionFunctions(new SuppressionList(storage.Suppressions, new SuppressionOptions(), new ManualTimeProvider(DateTimeOffset.UtcNow)));
    }

    private static async Task<(int Status, JsonElement Body)> CallAsync(string method, string path, Func<HttpRequest, Task<IResult>> function, string? json = null)
    {
        var request = json is null ? FunctionHttpCall.Request(method, path) : FunctionHttpCall.Request(method, path, "application/json", json);
        var response = await FunctionHttpCall.InvokeAsync(request, function);
        var body = response.Body();
        return (response.StatusCode, body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone());
    }

    [Fact]
    public async Task Add_list_look_up_and_remove()
    {
        var api = await FunctionsAsync();
        var none = CancellationToken.None;

        var put = await CallAsync("PUT", "/api/suppressions/Bob@Dest.example", r => api.PutSuppression(r, "Bob@Dest.example", none), """{"scope": "sender.example", "reason": "asked us to stop"}""");
        Assert.Equal(201, put.Status);
        Assert.Equal("sender.example", put.Body.GetProperty("scope").GetString());
        Assert.Equal("api", put.Body.GetProperty("source").GetString());
        var again = await CallAsync("PUT", "/api/suppressions/bob@dest.example", r => api.PutSuppression(r, "bob@dest.example", none), """{"scope": "sender.example", "reason": "still"}""");
        Assert.Equal(200, again.Status);
        var posted = await CallAsync("POST", "/api/suppressions", r => api.AddSuppression(r, none), """{"address": "carol@dest.example", "expiresAt": "2999-01-01T00:00:00Z"}""");
        Assert.Equal(201, posted.Status);
        Assert.Equal("global", posted.Body.GetProperty("scope").GetString());

        var all = await CallAsync("GET", "/api/suppressions", r => api.ListSuppressions(r, none));
        Assert.Equal(200, all.Status);
        Assert.Equal(2, all.Body.GetProperty("entries").GetArrayLength());
        var scoped = await CallAsync("GET", "/api/suppressions?scope=sender.example", r => api.ListSuppressions(r, none));
        Assert.Equal("still", Assert.Single(scoped.Body.GetProperty("entries").EnumerateArray()).GetProperty("reason").GetString());
        var paged = await CallAsync("GET", "/api/suppressions?limit=1", r => api.ListSuppressions(r, none));
        Assert.Equal(1, paged.Body.GetProperty("entries").GetArrayLength());
        var token = paged.Body.GetProperty("continuation").GetString()!;
        var next = await CallAsync("GET", $"/api/suppressions?limit=1&continuation={Uri.EscapeDataString(token)}", r => api.ListSuppressions(r, none));
        Assert.Equal(1, next.Body.GetProperty("entries").GetArrayLength());
        Assert.NotEqual(paged.Body.GetProperty("entries")[0].GetProperty("address").GetString(), next.Body.GetProperty("entries")[0].GetProperty("address").GetString());

        var found = await CallAsync("GET", "/api/suppressions/BOB@dest.example?scope=sender.example", r => api.LookUpSuppression(r, "BOB@dest.example", none));
        Assert.Equal(200, found.Status);
        Assert.Equal(404, (await CallAsync("GET", "/api/suppressions/bob@dest.example", r => api.LookUpSuppression(r, "bob@dest.example", none))).Status);

        Assert.Equal(204, (await CallAsync("DELETE", "/api/suppressions/bob@dest.example?scope=sender.example", r => api.RemoveSuppression(r, "bob@dest.example", none))).Status);
        Assert.Equal(404, (await CallAsync("DELETE", "/api/suppressions/bob@dest.example?scope=sender.example", r => api.RemoveSuppression(r, "bob@dest.example", none))).Status);
        Assert.Equal(404, (await CallAsync("GET", "/api/suppressions/bob@dest.example?scope=sender.example", r => api.LookUpSuppression(r, "bob@dest.example", none))).Status);
    }

    [Theory]
    [InlineData("PUT", "not an address", null, "invalid-address")]
    [InlineData("PUT", "a@b.example", "{\"scope\": \"no such/scope\"}", "invalid-scope")]
    [InlineData("PUT", "a@b.example", "{\"expiresAt\": \"tomorrow\"}", "invalid-expires-at")]
    [InlineData("PUT", "a@b.example", "{\"expiresAt\": \"2001-01-01T00:00:00Z\"}", "invalid-expires-at")]
    [InlineData("PUT", "a@b.example", "[1, 2]", "invalid-json")]
    [InlineData("PUT", "a@b.example", "{\"reason\": 5}", "invalid-json")]
    [InlineData("PUT", "a@b.example", "{\"reason\": ", "invalid-json")]
    [InlineData("POST", null, "{}", "invalid-address")]
    [InlineData("POST", null, "{\"address\": \"@nowhere\"}", "invalid-address")]
    [InlineData("GET", "a@", null, "invalid-address")]
    [InlineData("DELETE", "a@b.example?scope=%00", null, "invalid-scope")]
    public async Task Malformed_requests_get_a_400_with_an_error_code(string method, string? address, string? json, string code)
    {
        var api = await FunctionsAsync();
        var none = CancellationToken.None;
        var bare = address?.Split('?')[0];
        Func<HttpRequest, Task<IResult>> function = method switch
        {
            "PUT" => r => api.PutSuppression(r, bare!, none),
            "POST" => r => api.AddSuppression(r, none),
            "GET" => r => api.LookUpSuppression(r, bare!, none),
            _ => r => api.RemoveSuppression(r, bare!, none),
        };

        var (status, body) = await CallAsync(method, $"/api/suppressions/{address}", function, json);

        Assert.Equal(400, status);
        Assert.Equal(code, body.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("limit=0", "invalid-limit")]
    [InlineData("limit=1001", "invalid-limit")]
    [InlineData("limit=ten", "invalid-limit")]
    [InlineData("scope=a%20b", "invalid-scope")]
    [InlineData("continuation=%01x", "invalid-continuation")]
    public async Task Malformed_list_queries_get_a_400(string query, string code)
    {
        var api = await FunctionsAsync();

        var (status, body) = await CallAsync("GET", $"/api/suppressions?{query}", r => api.ListSuppressions(r, CancellationToken.None));

        Assert.Equal(400, status);
        Assert.Equal(code, body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_body_over_the_limit_gets_a_413()
    {
        var api = await FunctionsAsync();
        var json = "{\"reason\": \"" + new string('x', SuppressionHttpApi.MaxBodyBytes) + "\"}";

        var (status, _) = await CallAsync("PUT", "/api/suppressions/a@b.example", r => api.PutSuppression(r, "a@b.example", CancellationToken.None), json);

        Assert.Equal(413, status);
    }

    [Fact]
    public async Task Storage_that_does_not_answer_gets_a_503_with_retry_after()
    {
        var storage = await azurite.NewStorageAsync();
        await storage.Suppressions.DeleteAsync();
        // A table that is gone answers 404 "TableNotFound": storage trouble, not the client's.
        var api = new SuppressionFunctions(new SuppressionList(storage.Suppressions, new SuppressionOptions()));

        var response = await FunctionHttpCall.InvokeAsync(FunctionHttpCall.Request("GET", "/api/suppressions"), r => api.ListSuppressions(r, CancellationToken.None));

        Assert.Equal(503, response.StatusCode);
        Assert.Equal("5", response.Headers.RetryAfter.ToString());
        Assert.Contains("storage-unavailable", Encoding.UTF8.GetString(response.Body()), StringComparison.Ordinal);
    }
}
