using Azure.Data.Tables;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.MtaSts;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Cli;
using CloudDelivery.Dns;
using CloudDelivery.Functions;
using CloudDelivery.Loopback.Https;
using CloudDelivery.MtaSts;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;
using CloudDelivery.TlsRpt;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Tests.MtaSts;

/// <summary>
/// The MTA-STS policy cache in Table Storage (Azurite) behind the provider, the refresher and the
/// <c>policy</c> commands, against loopback DNS and a loopback HTTPS policy server whose requests are counted.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class MtaStsTableCacheTests(AzuriteFixture azurite) : IAsyncLifetime
{
    // Whole seconds: what the table stores comes back exactly.
    private readonly ManualTimeProvider time = new(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
    private LoopbackWorld world = null!;
    private DnsResolver resolver = null!;
    private OutboundStorage storage = null!;
    private TableMtaStsPolicyStore store = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        resolver = new DnsResolver(new DnsResolverOptions { Server = world.Dns.EndPoint, QueryTimeout = TimeSpan.FromSeconds(3), Retries = 1 });
        storage = await azurite.NewStorageAsync();
        store = new TableMtaStsPolicyStore(storage.MtaStsPolicies);
    }

    public async Task DisposeAsync() => await world.DisposeAsync();

    private MtaStsPolicyProvider Provider() => new(resolver, new MtaStsPolicyFetcher(resolver, new MtaStsFetchOptions
    {
        HttpsPort = world.MtaSts.EndPoint.Port,
        AddressPolicy = Dialing.AddressPolicy.AllowPrivate,
        ExtraTrustRoots = [world.Pki.Root],
        Timeout = TimeSpan.FromSeconds(5),
    }, time), store, time);

    private MtaStsPolicyRefresher Refresher(MtaStsPolicyProvider provider) =>
        new(provider, new MtaStsRefreshOptions { Spread = TimeSpan.Zero }, time);

    private static string PolicyText(string mode, params string[] mx) =>
        $"version: STSv1\r\nmode: {mode}\r\n" + string.Concat(mx.Select(m => $"mx: {m}\r\n")) + "max_age: 86400\r\n";

    private CachedMtaStsPolicy Entry(string domain, string? text = null, DateTimeOffset? lastUsed = null, DateTimeOffset? validUntil = null) => new()
    {
        Domain = domain,
        RecordId = "20261125",
        PolicyText = text ?? PolicyText("enforce", "mx." + domain),
        FetchedAt = time.GetUtcNow() - TimeSpan.FromHours(1),
        ValidUntil = validUntil ?? time.GetUtcNow() + TimeSpan.FromHours(23),
        LastUsed = lastUsed ?? time.GetUtcNow(),
    };

    [Fact]
    public async Task Recent_reads_spare_the_table_a_read_per_run_and_other_writers_are_seen_within_a_minute()
    {
        var recent = new RecentlyReadMtaStsPolicyStore(store, time);
        var before = storage.Counter.Count;
        // A domain without a policy (the common case) and one with: each read once however many runs ask.
        for (var run = 0; run < 10; run++)
        {
            Assert.Null(await recent.GetAsync(Domain.Parse("none.example"), CancellationToken.None));
        }
        await recent.PutAsync(Entry("has.example"), CancellationToken.None);
        for (var run = 0; run < 10; run++)
        {
            Assert.Equal("20261125", (await recent.GetAsync(Domain.Parse("has.example"), CancellationToken.None))!.RecordId);
        }
        Assert.Equal(2, storage.Counter.Count - before); // one read of none.example, one write of has.example

        // Another process stores a policy for none.example and replaces has.example's.
        await store.PutAsync(Entry("none.example"), CancellationToken.None);
        await store.PutAsync(Entry("has.example") with { RecordId = "20261201" }, CancellationToken.None);
        Assert.Null(await recent.GetAsync(Domain.Parse("none.example"), CancellationToken.None));
        time.Advance(RecentlyReadMtaStsPolicyStore.DefaultLifetime);
        Assert.NotNull(await recent.GetAsync(Domain.Parse("none.example"), CancellationToken.None));
        Assert.Equal("20261201", (await recent.GetAsync(Domain.Parse("has.example"), CancellationToken.None))!.RecordId);

        // This process's own delete is seen at once.
        await recent.DeleteAsync("has.example", CancellationToken.None);
        Assert.Null(await recent.GetAsync(Domain.Parse("has.example"), CancellationToken.None));
    }

    [Fact]
    public async Task Table_store_round_trips_entries_and_shows_mode_and_max_age_to_operators()
    {
        var policy = Entry("roundtrip.example", PolicyText("testing", "mx1.roundtrip.example", "*.roundtrip.example")) with { LastError = "earlier trouble" };
        var backoff = new CachedMtaStsPolicy
        {
            Domain = "backoff.example",
            RecordId = "abc",
            FetchedAt = time.GetUtcNow(),
            ValidUntil = time.GetUtcNow() + MtaStsPolicyProvider.FetchBackoff,
            LastUsed = time.GetUtcNow(),
            LastError = "connection refused",
            Backoff = true,
        };
        // Longer than one table string property holds (32 K characters).
        var longText = PolicyText("enforce", Enumerable.Range(0, 2000).Select(i => $"mx{i}.long.example").ToArray());
        Assert.True(longText.Length > 40_000);
        var longPolicy = Entry("long.example", longText);

        await store.PutAsync(policy, CancellationToken.None);
        await store.PutAsync(backoff, CancellationToken.None);
        await store.PutAsync(longPolicy, CancellationToken.None);

        Assert.Equal(policy, await store.GetAsync(Domain.Parse("roundtrip.example"), CancellationToken.None));
        Assert.Equal(backoff, await store.GetAsync(Domain.Parse("backoff.example"), CancellationToken.None));
        var longBack = await store.GetAsync(Domain.Parse("long.example"), CancellationToken.None);
        Assert.Equal(longText, longBack!.PolicyText);
        Assert.Equal(2000, longBack.Policy!.Mx.Count);
        Assert.Null(await store.GetAsync(Domain.Parse("absent.example"), CancellationToken.None));
        var raw = (await storage.MtaStsPolicies.GetEntityAsync<TableEntity>("roundtrip.example", string.Empty)).Value;
        Assert.Equal("testing", raw.GetString("Mode"));
        Assert.Equal(86400, raw.GetInt64("MaxAgeSeconds"));
        Assert.Equal("mx1.roundtrip.example *.roundtrip.example", raw.GetString("Mx"));
        var rawLong = (await storage.MtaStsPolicies.GetEntityAsync<TableEntity>("long.example", string.Empty)).Value;
        Assert.StartsWith("mx0.long.example mx1.long.example", rawLong.GetString("Mx"), StringComparison.Ordinal);

        // A replace drops what the new entry no longer has.
        var cleared = policy with { LastError = null };
        await store.PutAsync(cleared, CancellationToken.None);
        Assert.Equal(cleared, await store.GetAsync(Domain.Parse("roundtrip.example"), CancellationToken.None));

        // A touch changes LastUsed and nothing else, and creates nothing.
        var later = time.GetUtcNow() + TimeSpan.FromHours(3);
        await store.TouchAsync("roundtrip.example", later, CancellationToken.None);
        await store.TouchAsync("absent.example", later, CancellationToken.None);
        Assert.Equal(cleared with { LastUsed = later }, await store.GetAsync(Domain.Parse("roundtrip.example"), CancellationToken.None));
        Assert.Null(await store.GetAsync(Domain.Parse("absent.example"), CancellationToken.None));

        var listed = new List<CachedMtaStsPolicy>();
        await foreach (var entry in store.ListAsync(CancellationToken.None))
        {
            listed.Add(entry);
        }
        Assert.Equal(["backoff.example", "long.example", "roundtrip.example"], listed.Select(e => e.Domain).Order(StringComparer.Ordinal));

        await store.DeleteAsync("backoff.example", CancellationToken.None);
        await store.DeleteAsync("backoff.example", CancellationToken.None); // already gone: no error
        Assert.Null(await store.GetAsync(Domain.Parse("backoff.example"), CancellationToken.None));
    }

    [Fact]
    public async Task Table_store_creates_its_table_on_first_write()
    {
        var table = new TableClient(azurite.ConnectionString, $"mtastsnew{Environment.ProcessId % 10000}X{Guid.NewGuid():N}"[..30]);
        var fresh = new TableMtaStsPolicyStore(table);

        Assert.Null(await fresh.GetAsync(Domain.Parse("first.example"), CancellationToken.None));
        await fresh.PutAsync(Entry("first.example"), CancellationToken.None);

        Assert.NotNull(await fresh.GetAsync(Domain.Parse("first.example"), CancellationToken.None));
        await table.DeleteAsync();
    }

    [Fact]
    public async Task Fresh_policy_comes_from_the_table_without_a_fetch_and_an_expired_one_is_fetched_again()
    {
        world.PublishMtaSts("fresh.example", "enforce", ["mx.fresh.example"]);
        var domain = Domain.Parse("fresh.example");

        var first = await Provider().GetAsync(domain, CancellationToken.None);
        Assert.Equal(1, world.MtaSts.RequestCount);
        Assert.Equal(MtaStsMode.Enforce, first.Policy!.Mode);
        var stored = await store.GetAsync(domain, CancellationToken.None);
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromDays(1), stored!.ValidUntil);

        // Another worker (a new provider on the same table) an hour later: served from the table.
        time.Advance(TimeSpan.FromHours(23));
        var second = await Provider().GetAsync(domain, CancellationToken.None);
        Assert.Equal(1, world.MtaSts.RequestCount);
        Assert.True(second.Policy!.Matches(Domain.Parse("mx.fresh.example")));
        Assert.Equal(TlsRptPolicyType.Sts, second.Result.Policy.Type);

        // max_age (one day) has passed: fetched again, and the new fetch is what the table holds.
        time.Advance(TimeSpan.FromHours(1));
        var third = await Provider().GetAsync(domain, CancellationToken.None);
        Assert.Equal(2, world.MtaSts.RequestCount);
        Assert.NotNull(third.Policy);
        Assert.Equal(time.GetUtcNow(), (await store.GetAsync(domain, CancellationToken.None))!.FetchedAt);
    }

    [Fact]
    public async Task New_record_id_fetches_the_new_policy()
    {
        world.PublishMtaSts("newid.example", "testing", ["mx1.newid.example"], id: "one");
        var domain = Domain.Parse("newid.example");
        await Provider().GetAsync(domain, CancellationToken.None);

        world.Zone.Remove("_mta-sts.newid.example");
        world.PublishMtaSts("newid.example", "enforce", ["mx2.newid.example"], id: "two");
        time.Advance(TimeSpan.FromMinutes(10));
        var lookup = await Provider().GetAsync(domain, CancellationToken.None);

        Assert.Equal(2, world.MtaSts.RequestCount);
        Assert.Equal(MtaStsMode.Enforce, lookup.Policy!.Mode);
        Assert.True(lookup.Policy.Matches(Domain.Parse("mx2.newid.example")));
        var stored = await store.GetAsync(domain, CancellationToken.None);
        Assert.Equal("two", stored!.RecordId);
        Assert.Equal(MtaStsMode.Enforce, stored.Policy!.Mode);
    }

    [Fact]
    public async Task Failed_fetch_keeps_an_unexpired_cached_policy_and_records_the_error()
    {
        world.PublishMtaSts("keep.example", "enforce", ["mx1.keep.example"], id: "one");
        var domain = Domain.Parse("keep.example");
        await Provider().GetAsync(domain, CancellationToken.None);

        // RFC 8461 §5.1: a new id whose policy cannot be fetched leaves the cached policy in force.
        world.Zone.Remove("_mta-sts.keep.example");
        world.PublishMtaSts("keep.example", "enforce", ["mx2.keep.example"], id: "two", behaviour: MtaStsServerBehaviour.ServerError);
        time.Advance(TimeSpan.FromHours(2));
        var lookup = await Provider().GetAsync(domain, CancellationToken.None);

        Assert.True(lookup.Policy!.Matches(Domain.Parse("mx1.keep.example")));
        Assert.Contains(lookup.Result.FailureDetails, d => d.FailureReasonCode.EndsWith("+fallback-to-cached-policy", StringComparison.Ordinal));
        var stored = await store.GetAsync(domain, CancellationToken.None);
        Assert.Equal("one", stored!.RecordId);
        Assert.False(string.IsNullOrEmpty(stored.LastError));
        Assert.False(stored.Backoff);

        // The same failure on the next message: fetched again, but nothing new to write.
        var before = storage.Counter.Count;
        var requests = world.MtaSts.RequestCount;
        var again = await Provider().GetAsync(domain, CancellationToken.None);
        Assert.True(again.Policy!.Matches(Domain.Parse("mx1.keep.example")));
        Assert.Equal(requests + 1, world.MtaSts.RequestCount);
        Assert.Equal(1, storage.Counter.Count - before);
    }

    [Fact]
    public async Task Failed_fetch_without_a_cached_policy_gives_no_policy_and_a_backoff_entry()
    {
        world.PublishMtaSts("down.example", "enforce", ["mx.down.example"], behaviour: MtaStsServerBehaviour.ServerError);
        var domain = Domain.Parse("down.example");

        var first = await Provider().GetAsync(domain, CancellationToken.None);
        Assert.Null(first.Policy);
        Assert.Null(first.TemporaryError);
        Assert.Contains(first.Result.FailureDetails, d => d.ResultType == TlsRptResultType.StsPolicyFetchError);
        var stored = await store.GetAsync(domain, CancellationToken.None);
        Assert.True(stored!.Backoff);
        Assert.Equal(time.GetUtcNow() + MtaStsPolicyProvider.FetchBackoff, stored.ValidUntil);
        Assert.False(string.IsNullOrEmpty(stored.LastError));
        var requests = world.MtaSts.RequestCount;

        // Within the backoff another worker does not fetch again.
        time.Advance(TimeSpan.FromMinutes(1));
        var second = await Provider().GetAsync(domain, CancellationToken.None);
        Assert.Null(second.Policy);
        Assert.Equal(requests, world.MtaSts.RequestCount);

        // After it, it does.
        time.Advance(MtaStsPolicyProvider.FetchBackoff);
        await Provider().GetAsync(domain, CancellationToken.None);
        Assert.True(world.MtaSts.RequestCount > requests);
    }

    [Fact]
    public async Task LastUsed_is_written_at_most_hourly_so_lookups_cost_one_read()
    {
        world.PublishMtaSts("cheap.example", "enforce", ["mx.cheap.example"]);
        var domain = Domain.Parse("cheap.example");
        var provider = Provider();
        await provider.GetAsync(domain, CancellationToken.None);
        var firstUse = time.GetUtcNow();

        // Within the hour: one table read per lookup, no write.
        time.Advance(TimeSpan.FromMinutes(59));
        var before = storage.Counter.Count;
        await provider.GetAsync(domain, CancellationToken.None);
        await provider.GetAsync(domain, CancellationToken.None);
        Assert.Equal(2, storage.Counter.Count - before);
        Assert.Equal(firstUse, (await store.GetAsync(domain, CancellationToken.None))!.LastUsed);

        // An hour after the stored LastUsed: one read and one merge of LastUsed.
        time.Advance(TimeSpan.FromMinutes(1));
        before = storage.Counter.Count;
        await provider.GetAsync(domain, CancellationToken.None);
        Assert.Equal(2, storage.Counter.Count - before);
        var stored = await store.GetAsync(domain, CancellationToken.None);
        Assert.Equal(time.GetUtcNow(), stored!.LastUsed);
        Assert.Equal(firstUse, stored.FetchedAt);
        Assert.Equal(1, world.MtaSts.RequestCount);
    }

    [Fact]
    public async Task Refresher_refreshes_used_entries_about_to_expire_and_deletes_long_unused_ones()
    {
        var now = time.GetUtcNow();
        // Used yesterday, expires in 3 hours (before the next run in 6): refreshed.
        world.PublishMtaSts("soon.example", "enforce", ["mx2.soon.example"], id: "two");
        await store.PutAsync(Entry("soon.example", PolicyText("testing", "mx1.soon.example"), lastUsed: now - TimeSpan.FromDays(1), validUntil: now + TimeSpan.FromHours(3)), CancellationToken.None);
        // Valid for another 20 hours: left alone.
        world.PublishMtaSts("later.example", "enforce", ["mx.later.example"]);
        var later = Entry("later.example", validUntil: now + TimeSpan.FromHours(20));
        await store.PutAsync(later, CancellationToken.None);
        // Not used for 181 days: deleted, not fetched.
        world.PublishMtaSts("old.example", "enforce", ["mx.old.example"]);
        await store.PutAsync(Entry("old.example", lastUsed: now - TimeSpan.FromDays(181), validUntil: now + TimeSpan.FromHours(1)), CancellationToken.None);
        // A backoff entry whose policy host works again: replaced by the policy.
        world.PublishMtaSts("back.example", "enforce", ["mx.back.example"]);
        await store.PutAsync(new CachedMtaStsPolicy { Domain = "back.example", RecordId = "20261125", FetchedAt = now, ValidUntil = now + TimeSpan.FromMinutes(5), LastUsed = now, LastError = "earlier", Backoff = true }, CancellationToken.None);
        // Expiring, but its host fails: the error is recorded, the policy stays.
        world.PublishMtaSts("failing.example", "enforce", ["mx2.failing.example"], id: "two", behaviour: MtaStsServerBehaviour.ServerError);
        var failing = Entry("failing.example", validUntil: now + TimeSpan.FromHours(2));
        await store.PutAsync(failing, CancellationToken.None);

        var summary = await Refresher(Provider()).RefreshAsync(TimeSpan.FromHours(6), CancellationToken.None);

        Assert.Equal(new MtaStsRefreshSummary(5, 1, 2, 1), summary);
        Assert.Equal(3, world.MtaSts.RequestCount);
        var soon = await store.GetAsync(Domain.Parse("soon.example"), CancellationToken.None);
        Assert.Equal("two", soon!.RecordId);
        Assert.Equal(MtaStsMode.Enforce, soon.Policy!.Mode);
        Assert.Equal(now + TimeSpan.FromDays(1), soon.ValidUntil);
        Assert.Equal(now - TimeSpan.FromDays(1), soon.LastUsed); // a refresh is not a use
        Assert.Equal(later, await store.GetAsync(Domain.Parse("later.example"), CancellationToken.None));
        Assert.Null(await store.GetAsync(Domain.Parse("old.example"), CancellationToken.None));
        var back = await store.GetAsync(Domain.Parse("back.example"), CancellationToken.None);
        Assert.False(back!.Backoff);
        Assert.Null(back.LastError);
        Assert.NotNull(back.Policy);
        var failed = await store.GetAsync(Domain.Parse("failing.example"), CancellationToken.None);
        Assert.Equal(failing.PolicyText, failed!.PolicyText);
        Assert.Equal(failing.ValidUntil, failed.ValidUntil);
        Assert.False(string.IsNullOrEmpty(failed.LastError));
    }

    [Fact]
    public async Task Refresher_survives_a_missing_table_and_the_timer_function_runs_it()
    {
        var missing = new TableMtaStsPolicyStore(new TableClient(azurite.ConnectionString, "mtastsneverCreated"));
        var provider = new MtaStsPolicyProvider(resolver, new MtaStsPolicyFetcher(resolver, new MtaStsFetchOptions(), time), missing, time);

        await new MtaStsFunctions(Refresher(provider)).RefreshMtaStsPolicies(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);

        await store.PutAsync(Entry("timer.example", lastUsed: time.GetUtcNow() - TimeSpan.FromDays(200)), CancellationToken.None);
        await new MtaStsFunctions(Refresher(Provider())).RefreshMtaStsPolicies(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);
        Assert.Null(await store.GetAsync(Domain.Parse("timer.example"), CancellationToken.None));
    }

    [Fact]
    public async Task Refresher_spreads_its_fetches_over_the_run()
    {
        var now = time.GetUtcNow();
        foreach (var name in new[] { "spread1.example", "spread2.example", "spread3.example" })
        {
            world.PublishMtaSts(name, "enforce", ["mx." + name]);
            await store.PutAsync(Entry(name, validUntil: now + TimeSpan.FromHours(1)), CancellationToken.None);
        }
        // Real delays (ManualTimeProvider has no timers); three slots of 200 ms, the last starting at 400 ms.
        var refresher = new MtaStsPolicyRefresher(Provider(), new MtaStsRefreshOptions { Spread = TimeSpan.FromMilliseconds(600) }, TimeProvider.System);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var summary = await refresher.RefreshAsync(TimeSpan.FromHours(6), CancellationToken.None);

        Assert.Equal(3, summary.Refreshed);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(390), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Hosts_cache_policies_in_the_configured_table_and_run_the_refresher()
    {
        await using var app = CloudDelivery.Cli.Commands.ServeCommand.Build("http://127.0.0.1:0", new Dictionary<string, string?>
        {
            ["CloudDelivery:Storage:ConnectionString"] = azurite.ConnectionString,
            ["CloudDelivery:Storage:MtaStsTable"] = storage.Options.MtaStsTable,
            ["CloudDelivery:MtaSts:Interval"] = "03:00:00",
        });

        var engine = app.Services.GetRequiredService<CloudDelivery.Delivery.DeliveryEngine>();
        var tableStore = Assert.IsType<TableMtaStsPolicyStore>(Assert.IsType<RecentlyReadMtaStsPolicyStore>(engine.MtaSts.Store).Shared);
        Assert.Equal(storage.Options.MtaStsTable, tableStore.Table.Name);
        Assert.Equal(TimeSpan.FromHours(3), app.Services.GetRequiredService<MtaStsPolicyRefresher>().Options.Interval);
        await app.StartAsync();
        // The hosted loops start in the background: wait for the refresher to be registered.
        var health = app.Services.GetRequiredService<CloudDelivery.Azure.Hosting.ServiceHealth>();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!health.Loops.Any(l => l.Name == "mtasts-refresh") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        var loops = health.Loops;
        await app.StopAsync();
        Assert.Contains(loops, l => l.Name == "mtasts-refresh");
    }

    [Fact]
    public async Task Policy_refresh_and_show_commands_use_the_table()
    {
        // The commands use the default table name (only this test does); the domains are this test's own.
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var common = new[] { "--storage", azurite.ConnectionString, "--resolver", world.Dns.EndPoint.ToString(), "--trust-ca", caFile, "--allow-private-addresses", "--mta-sts-port", world.MtaSts.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--timeout", "5" };
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var good = $"cli{suffix}.example";
        var broken = $"clibroken{suffix}.example";
        world.PublishMtaSts(good, "testing", [$"mx.{good}", $"*.{good}"], id: "cli1");
        world.PublishMtaSts(broken, "enforce", [$"mx.{broken}"], behaviour: MtaStsServerBehaviour.NotFound);
        try
        {
            var refreshed = await RunAsync(["policy", "refresh", good, .. common]);
            Assert.Equal(0, refreshed.Exit);
            Assert.Contains("mode testing", refreshed.Output, StringComparison.Ordinal);
            Assert.Equal(1, world.MtaSts.RequestCount);

            var shown = await RunAsync("policy", "show", good, "--storage", azurite.ConnectionString);
            Assert.Equal(0, shown.Exit);
            Assert.Contains("mode: testing", shown.Output, StringComparison.Ordinal);
            Assert.Contains($"mx: mx.{good}, *.{good}", shown.Output, StringComparison.Ordinal);
            Assert.Contains("max_age: 86400", shown.Output, StringComparison.Ordinal);
            Assert.Contains("last error: -", shown.Output, StringComparison.Ordinal);

            var json = await RunAsync("policy", "show", good, "--json", "--storage", azurite.ConnectionString);
            using var document = System.Text.Json.JsonDocument.Parse(json.Output);
            Assert.Equal("testing", document.RootElement.GetProperty("mode").GetString());
            Assert.Equal("cli1", document.RootElement.GetProperty("recordId").GetString());
            Assert.Equal(86400, document.RootElement.GetProperty("maxAge").GetInt64());
            Assert.Equal(2, document.RootElement.GetProperty("mx").GetArrayLength());
            Assert.False(document.RootElement.GetProperty("expired").GetBoolean());

            var failed = await RunAsync(["policy", "refresh", broken, .. common]);
            Assert.Equal(1, failed.Exit);
            Assert.Contains(broken, failed.Output, StringComparison.Ordinal);
            Assert.Contains("404", failed.Output, StringComparison.Ordinal);

            var none = await RunAsync("policy", "show", broken, "--storage", azurite.ConnectionString);
            Assert.Equal(1, none.Exit);
            Assert.Contains("no cached MTA-STS policy", none.Output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(caFile);
        }
    }

    private static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        var exit = await CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }
}
