using CloudDelivery.Addressing;
using CloudDelivery.Azure.Suppression;
using CloudDelivery.Tests.MtaSts;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Suppression;

/// <summary>The list's snapshot across instances and its keys, over Azurite with a clock the test moves.</summary>
[Collection(AzuriteCollection.Name)]
public class SuppressionListTests(AzuriteFixture azurite)
{
    private static EmailAddress Address(string text) => EmailAddress.Parse(text);

    [Fact]
    public async Task Another_instance_sees_an_addition_and_a_removal_after_its_refresh_interval()
    {
        var storage = await azurite.NewStorageAsync();
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var options = new SuppressionOptions { RefreshInterval = TimeSpan.FromSeconds(30) };
        using var here = new SuppressionList(storage.Suppressions, options, time);
        using var there = new SuppressionList(storage.Suppressions, options, time);
        var recipient = Address("someone@dest.example");
        Assert.Empty(await there.CheckAsync(null, [recipient], CancellationToken.None));

        await here.AddAsync(recipient, SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);

        Assert.NotEmpty(await here.CheckAsync(null, [recipient], CancellationToken.None));
        Assert.Empty(await there.CheckAsync(null, [recipient], CancellationToken.None));
        time.Advance(TimeSpan.FromSeconds(30));
        var match = Assert.Single(await there.CheckAsync(null, [recipient], CancellationToken.None));
        Assert.Equal(SuppressionKeys.Global, match.Value.Scope);

        Assert.True(await here.RemoveAsync(recipient, SuppressionKeys.Global, CancellationToken.None));

        Assert.Empty(await here.CheckAsync(null, [recipient], CancellationToken.None));
        Assert.NotEmpty(await there.CheckAsync(null, [recipient], CancellationToken.None));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Empty(await there.CheckAsync(null, [recipient], CancellationToken.None));
        Assert.False(await here.RemoveAsync(recipient, SuppressionKeys.Global, CancellationToken.None));
    }

    [Fact]
    public async Task A_failing_refresh_keeps_the_last_snapshot()
    {
        var storage = await azurite.NewStorageAsync();
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        using var list = new SuppressionList(storage.Suppressions, new SuppressionOptions(), time);
        var recipient = Address("kept@dest.example");
        await list.AddAsync(recipient, SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);
        Assert.NotEmpty(await list.CheckAsync(null, [recipient], CancellationToken.None));

        await storage.Suppressions.DeleteAsync();
        time.Advance(TimeSpan.FromMinutes(1));

        Assert.NotEmpty(await list.CheckAsync(null, [recipient], CancellationToken.None));
    }

    [Fact]
    public async Task A_missing_table_suppresses_nothing_rather_than_refusing_mail()
    {
        var storage = await azurite.NewStorageAsync();
        await storage.Suppressions.DeleteAsync();
        using var list = new SuppressionList(storage.Suppressions, new SuppressionOptions());

        Assert.Empty(await list.CheckAsync(null, [Address("anyone@dest.example")], CancellationToken.None));
    }

    [Fact]
    public async Task The_purge_deletes_tombstones_after_a_day_and_keeps_live_entries()
    {
        var storage = await azurite.NewStorageAsync();
        using var list = new SuppressionList(storage.Suppressions, new SuppressionOptions());
        await list.AddAsync(Address("live@dest.example"), SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);
        await list.AddAsync(Address("gone@dest.example"), SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);
        await list.RemoveAsync(Address("gone@dest.example"), SuppressionKeys.Global, CancellationToken.None);
        // Timestamps are the service's: a purge a day later is one whose clock is a day ahead.
        using var later = new SuppressionList(storage.Suppressions, new SuppressionOptions(), new ManualTimeProvider(DateTimeOffset.UtcNow + TimeSpan.FromDays(1) + TimeSpan.FromMinutes(5)));

        Assert.Equal(0, await list.PurgeAsync(CancellationToken.None));
        Assert.Equal(1, await later.PurgeAsync(CancellationToken.None));

        var remaining = new List<string>();
        await foreach (var entity in storage.Suppressions.QueryAsync<SuppressionEntity>())
        {
            remaining.Add(entity.RowKey);
        }
        Assert.Equal(["live@dest.example"], remaining);
    }

    [Theory]
    [InlineData("Bob@Example.COM", "bob@example.com")]
    [InlineData("<bob@example.com>", "bob@example.com")]
    [InlineData("\"a/b#c?d%e\"@example.com", "\"a%2Fb%23c%3Fd%25e\"@example.com")]
    [InlineData("jöran@bücher.example", "jöran@xn--bcher-kva.example")]
    public void Addresses_are_matched_case_insensitively_with_the_keys_storage_refuses_escaped(string address, string rowKey)
    {
        Assert.True(SuppressionKeys.TryParseAddress(address, out var parsed, out var error), error);
        Assert.Equal(rowKey, SuppressionKeys.RowKeyOf(parsed));
    }

    [Theory]
    [InlineData(null, "global")]
    [InlineData("GLOBAL", "global")]
    [InlineData("Sender.Example", "sender.example")]
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    public void Scopes_are_global_or_a_domain_in_lower_case_a_labels(string? scope, string stored)
    {
        Assert.True(SuppressionKeys.TryParseScope(scope, out var parsed, out var error), error);
        Assert.Equal(stored, parsed);
    }

    [Fact]
    public void A_scope_that_is_no_domain_is_refused() =>
        Assert.False(SuppressionKeys.TryParseScope("not a domain/", out _, out _));
}
