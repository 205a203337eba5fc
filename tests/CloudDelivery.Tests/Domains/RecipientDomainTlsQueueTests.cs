using System.Text.Json;
using Azure.Data.Tables;
using CloudDelivery.Azure.Domains;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Shaping;
using CloudDelivery.Cli;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Delivery;
using CloudDelivery.Functions;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Domains;

/// <summary>
/// The "~tls" summary through the queue on Azurite: written after a delivery, answered by
/// GET /api/domains/{domain} (the real function class and <c>serve</c>) and <c>status --domain</c>, written
/// again only when it changes, and invisible to every query over records.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class RecipientDomainTlsQueueTests(AzuriteFixture azurite)
{
    private const string Domain = "supports.example";

    private static async Task<(int Status, JsonElement Body)> GetAsync(QueueWorld world, string domain)
    {
        var function = new DomainFunctions(world.Queue, ShapingOf(world));
        var response = await FunctionHttpCall.InvokeAsync(FunctionHttpCall.Request("GET", $"/api/domains/{Uri.EscapeDataString(domain)}"), r => function.RecipientDomainTls(r, domain, CancellationToken.None));
        return (response.StatusCode, JsonDocument.Parse(response.Body()).RootElement.Clone());
    }

    private static DestinationShaping ShapingOf(QueueWorld world) =>
        new(world.Engine.Options.Shaping, world.Engine.Resolver, new ThrottleStateTable(world.Storage.Shaping), world.Time);

    [Fact]
    public async Task The_api_shows_the_provider_budget_a_domain_spends_and_a_pause_another_instance_wrote()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        // Hosted by Google: the shipped rules put it on the "google" budget, found through its MX host.
        world.Network.Zone.AddMx("hosted.example", 10, "aspmx.l.google.com");
        Assert.Equal(404, (await GetAsync(world, "hosted.example")).Status);

        // An instance that was throttled by Google wrote the pause to the shared table.
        var until = world.Time.GetUtcNow() + TimeSpan.FromMinutes(4);
        await new ThrottleStateTable(world.Storage.Shaping).WriteAsync(new ThrottleState("google", until, 30, world.Time.GetUtcNow(), "another-instance"), CancellationToken.None);

        var (status, body) = await GetAsync(world, "hosted.example");
        Assert.Equal(200, status);
        var shaping = body.GetProperty("shaping");
        Assert.Equal("google", shaping.GetProperty("key").GetString());
        Assert.True(shaping.GetProperty("paused").GetBoolean());
        Assert.Equal(until, shaping.GetProperty("pausedUntil").GetDateTimeOffset());
        Assert.Equal(30, shaping.GetProperty("currentMessagesPerMinute").GetInt32());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("startTls").ValueKind);

        // Once the pause is over the budget is shown as running again.
        world.Time.Advance(TimeSpan.FromMinutes(5));
        var after = await ShapingOf(world).DescribeAsync("hosted.example", CancellationToken.None);
        Assert.Equal(("google", (DateTimeOffset?)null), (after.Key, after.PausedUntil));
        Assert.Contains("budget google:", DestinationShaping.Describe(after), StringComparison.Ordinal);
    }

    private static async Task<TableEntity?> EntityAsync(QueueWorld world)
    {
        var response = await world.Storage.Recipients.GetEntityIfExistsAsync<TableEntity>(Domain, RecipientDomainTlsStore.RowKey);
        return response.HasValue ? response.Value : null;
    }

    private static async Task<(QueueWorld World, LoopbackSmtpServerOptions Mx)> StartAsync(AzuriteFixture azurite)
    {
        var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx(Domain, 10, $"mx.{Domain}");
        LoopbackSmtpServerOptions? options = null;
        await world.Network.AddMxServerAsync($"mx.{Domain}", o => (options = o).AdvertiseRequireTls = true);
        return (world, options!);
    }

    [Fact]
    public async Task A_delivery_records_what_the_mx_offers_and_the_api_reports_it()
    {
        var (world, _) = await StartAsync(azurite);
        await using var _world = world;
        Assert.Equal(404, (await GetAsync(world, Domain)).Status);

        await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();

        var (status, body) = await GetAsync(world, Domain);
        Assert.Equal(200, status);
        Assert.Equal(Domain, body.GetProperty("domain").GetString());
        Assert.True(body.GetProperty("startTls").GetBoolean());
        Assert.True(body.GetProperty("requireTls").GetBoolean());
        Assert.Equal("none", body.GetProperty("verified").GetString());
        Assert.Equal(world.Time.GetUtcNow(), body.GetProperty("seenAt").GetDateTimeOffset());
        // The name is normalised as submissions store it: case and a trailing dot do not matter.
        Assert.Equal(200, (await GetAsync(world, "SUPPORTS.Example.")).Status);
        Assert.Equal(400, (await GetAsync(world, "not a domain/..")).Status);
        Assert.Equal("invalid-domain", (await GetAsync(world, "bad_label!.example")).Body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Serve_answers_the_same_route()
    {
        var (world, _) = await StartAsync(azurite);
        await using var _world = world;
        await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Network.Pki.RootPem);
        var port = Tests.Delivery.LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world.Network, azurite.ConnectionString, world.Storage, caFile);
        settings["Logging:LogLevel:Default"] = "Warning";
        await using var serve = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await serve.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            using var found = await http.GetAsync($"/api/domains/{Domain}");
            Assert.Equal(200, (int)found.StatusCode);
            var body = JsonDocument.Parse(await found.Content.ReadAsStringAsync()).RootElement;
            Assert.True(body.GetProperty("requireTls").GetBoolean());
            using var unknown = await http.GetAsync("/api/domains/never-seen.example");
            Assert.Equal(404, (int)unknown.StatusCode);
            using var malformed = await http.GetAsync("/api/domains/a..b");
            Assert.Equal(400, (int)malformed.StatusCode);
        }
        finally
        {
            await serve.StopAsync();
            File.Delete(caFile);
        }
    }

    [Fact]
    public async Task An_unchanged_summary_is_not_written_again_and_a_change_is()
    {
        var (world, mx) = await StartAsync(azurite);
        await using var _world = world;
        await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();
        var first = await EntityAsync(world);

        // Same support, minutes later: no write (the entity keeps its ETag).
        world.Time.Advance(TimeSpan.FromMinutes(10));
        await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();
        Assert.Equal(first!.ETag, (await EntityAsync(world))!.ETag);

        // The server stops offering REQUIRETLS: written.
        mx.AdvertiseRequireTls = false;
        await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();
        var changed = await EntityAsync(world);
        Assert.NotEqual(first.ETag, changed!.ETag);
        Assert.False((await GetAsync(world, Domain)).Body.GetProperty("requireTls").GetBoolean());

        // Unchanged, but a day on: written once more, so seenAt moves.
        world.Time.Advance(RecipientDomainTlsStore.SeenAtRefresh);
        await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();
        Assert.NotEqual(changed.ETag, (await EntityAsync(world))!.ETag);
        Assert.Equal(world.Time.GetUtcNow(), (await GetAsync(world, Domain)).Body.GetProperty("seenAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task A_new_process_writes_on_first_sight_without_reading()
    {
        var (world, _) = await StartAsync(azurite);
        await using var _world = world;
        var store = new RecipientDomainTlsStore(world.Storage.Recipients);
        var seen = new RecipientDomainTls(true, true, TlsVerifiedBy.None, world.Time.GetUtcNow());
        var before = world.Storage.Counter.Count;

        Assert.True(await store.RecordAsync(Domain, seen, CancellationToken.None));
        Assert.False(await store.RecordAsync(Domain, seen with { SeenAt = seen.SeenAt.AddHours(1) }, CancellationToken.None));

        // One request in all: the upsert; no read before it, none for the unchanged second.
        Assert.Equal(1, world.Storage.Counter.Count - before);
    }

    [Fact]
    public async Task The_summary_never_shows_among_records()
    {
        var (world, _) = await StartAsync(azurite);
        await using var _world = world;
        var delivered = await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        await world.DrainAsync();
        Assert.NotNull(await EntityAsync(world));

        Assert.Empty(await world.Queue.ReadyAsync(Domain, CancellationToken.None));
        Assert.Empty(await world.Queue.DomainsDueAsync(world.Time.GetUtcNow().AddDays(30), CancellationToken.None));
        Assert.Equal([delivered.Recipients[0].Id], (await world.Queue.FindMessageAsync(delivered.MessageId, CancellationToken.None)).Select(r => r.Id));
        var queued = await world.SubmitAsync("s@sender.example", [$"r@{Domain}"]);
        Assert.Equal([queued.Recipients[0].Id], (await world.Queue.ReadyAsync(Domain, CancellationToken.None)).Select(r => r.Id));

        var set = new[] { "--storage", azurite.ConnectionString, "--set", $"CloudDelivery:Storage:RecipientsTable={world.Storage.Options.RecipientsTable}" };
        var (_, list) = await RunAsync(["queue", "list", .. set]);
        Assert.Equal([queued.Recipients[0].Id], list.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]));
        var (_, counts) = await RunAsync(["status", "--json", .. set]);
        Assert.Equal(new Dictionary<string, int> { ["delivered"] = 1, ["queued"] = 1 }, JsonSerializer.Deserialize<Dictionary<string, int>>(counts));
        var (exit, shown) = await RunAsync(["status", "--domain", Domain, .. set]);
        Assert.Equal(0, exit);
        Assert.Contains($"{Domain}: startTls yes, requireTls yes, verified none", shown, StringComparison.Ordinal);

        // The purge deletes final records after the retention, never the summary.
        world.Time.Advance(world.Queue.Options.Retention + TimeSpan.FromDays(1));
        await new QueuePurger(world.Queue).PurgeAsync(CancellationToken.None);
        Assert.Null(await world.Queue.FindAsync(delivered.Recipients[0].Id, CancellationToken.None));
        Assert.NotNull(await EntityAsync(world));
    }

    private static async Task<(int Exit, string Output)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        var exit = await CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }
}
