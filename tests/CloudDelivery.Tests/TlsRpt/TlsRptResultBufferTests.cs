using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Tests.Queue;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.TlsRpt;

/// <summary>Delivery runs' TLSRPT results kept in memory and written once per flush (TlsRpt:ResultsFlushInterval).</summary>
[Collection(AzuriteCollection.Name)]
public class TlsRptResultBufferTests(AzuriteFixture azurite)
{
    private static TlsRptResult Run(string domain, long successes, long failures)
    {
        var result = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, domain);
        result.Add(successes, failures);
        return result;
    }

    [Fact]
    public async Task Many_runs_cost_one_write_per_domain_at_the_flush_and_their_counts_add_up()
    {
        var storage = await azurite.NewStorageAsync();
        var store = new TlsRptResultStore(storage.TlsReports) { FlushInterval = TimeSpan.FromSeconds(30) };
        var before = storage.Counter.Count;
        // The engine's result objects are not kept: changing one after it was added changes nothing stored.
        var reused = Run("a.example", 2, 1);
        for (var i = 0; i < 20; i++)
        {
            await store.AddAsync("a.example", reused, [Run("mx.a.example", 2, 1)], CancellationToken.None);
        }
        await store.AddAsync("b.example", Run("b.example", 5, 0), [], CancellationToken.None);
        reused.Add(1000, 1000);
        Assert.Equal(before, storage.Counter.Count);
        Assert.Empty(await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None));

        Assert.Equal(2, await store.FlushAsync(CancellationToken.None));

        Assert.Equal(0, store.PendingCount);
        var stored = await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None);
        var domain = Assert.Single(stored, s => s.RecipientDomain == "a.example" && !s.IsHost).Result.Summary;
        Assert.Equal((40, 20), (domain.TotalSuccessfulSessionCount, domain.TotalFailureSessionCount));
        Assert.Equal(40, Assert.Single(stored, s => s.RecipientDomain == "a.example" && s.IsHost).Result.Summary.TotalSuccessfulSessionCount);
        Assert.Equal(5, Assert.Single(stored, s => s.RecipientDomain == "b.example").Result.Summary.TotalSuccessfulSessionCount);
        // A later flush adds to what is stored.
        await store.AddAsync("b.example", Run("b.example", 1, 0), [], CancellationToken.None);
        await store.FlushAsync(CancellationToken.None);
        Assert.Equal(6, Assert.Single(await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None), s => s.RecipientDomain == "b.example").Result.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task A_flush_that_cannot_write_keeps_the_counts_for_the_next_one()
    {
        var storage = await azurite.NewStorageAsync();
        // A table that does not exist yet: every write fails.
        var table = new global::Azure.Data.Tables.TableClient(storage.Options.ConnectionString, "tlsrptlater" + Guid.NewGuid().ToString("N")[..8]);
        var store = new TlsRptResultStore(table) { FlushInterval = TimeSpan.FromSeconds(30) };
        await store.AddAsync("kept.example", Run("kept.example", 3, 1), [], CancellationToken.None);

        await Assert.ThrowsAsync<IOException>(() => store.FlushAsync(CancellationToken.None));
        Assert.Equal(1, store.PendingCount);
        await store.AddAsync("kept.example", Run("kept.example", 1, 0), [], CancellationToken.None);

        await table.CreateIfNotExistsAsync();
        Assert.Equal(1, await store.FlushAsync(CancellationToken.None));
        var summary = Assert.Single(await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None)).Result.Summary;
        Assert.Equal((4, 1), (summary.TotalSuccessfulSessionCount, summary.TotalFailureSessionCount));
    }

    [Fact]
    public async Task Without_an_interval_every_run_is_written_at_once()
    {
        var storage = await azurite.NewStorageAsync();
        var store = new TlsRptResultStore(storage.TlsReports);
        await store.AddAsync("now.example", Run("now.example", 1, 0), [], CancellationToken.None);
        Assert.Single(await store.ListAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None));
        Assert.Equal(0, await store.FlushAsync(CancellationToken.None));
    }
}
