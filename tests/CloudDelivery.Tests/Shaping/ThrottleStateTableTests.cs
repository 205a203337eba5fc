using CloudDelivery.Azure.Shaping;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Tests.Queue;
using CsCheck;

namespace CloudDelivery.Tests.Shaping;

/// <summary>The shared throttle state table against Azurite: what one instance writes, another reads.</summary>
[Collection(AzuriteCollection.Name)]
public class ThrottleStateTableTests(AzuriteFixture azurite)
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 6, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_state_written_by_one_instance_is_read_by_another_over_its_own_clients()
    {
        var storage = await azurite.NewStorageAsync();
        var other = new OutboundStorage(storage.Options);
        var written = new ThrottleState("microsoft", Now.AddMinutes(2), 30, Now, "instance-a");

        await new ThrottleStateTable(storage.Shaping).WriteAsync(written, CancellationToken.None);

        var read = await new ThrottleStateTable(other.Shaping).ReadChangedSinceAsync(Now.AddMinutes(-1), CancellationToken.None);
        Assert.Equal([written], read);
    }

    [Fact]
    public async Task A_key_has_one_row_and_the_newest_transition_replaces_it()
    {
        var table = new ThrottleStateTable((await azurite.NewStorageAsync()).Shaping);
        await table.WriteAsync(new ThrottleState("google", Now.AddMinutes(1), 60, Now, "a"), CancellationToken.None);
        var recovered = new ThrottleState("google", Now.AddMinutes(5), null, Now.AddMinutes(5), "b");

        await table.WriteAsync(recovered, CancellationToken.None);

        Assert.Equal(recovered, await table.ReadAsync("google", CancellationToken.None));
        Assert.Equal([recovered], await table.ReadChangedSinceAsync(Now.AddHours(-1), CancellationToken.None));
    }

    [Fact]
    public async Task Rows_changed_before_the_horizon_are_not_read()
    {
        var table = new ThrottleStateTable((await azurite.NewStorageAsync()).Shaping);
        await table.WriteAsync(new ThrottleState("old.example", Now.AddMinutes(1), 10, Now.AddHours(-3), "a"), CancellationToken.None);
        var recent = new ThrottleState("new.example", Now.AddMinutes(1), 10, Now, "a");
        await table.WriteAsync(recent, CancellationToken.None);

        Assert.Equal([recent], await table.ReadChangedSinceAsync(Now - SharedShapingOptions.Horizon, CancellationToken.None));
    }

    [Fact]
    public async Task Any_key_a_rules_file_may_name_is_stored_under_a_partition_key_storage_accepts()
    {
        var table = new ThrottleStateTable((await azurite.NewStorageAsync()).Shaping);
        string[] keys = ["a/b", "q?x#y", "back\\slash", "ctl\u0001", "Ünïcode.example", ".google.com", ""];

        foreach (var key in keys)
        {
            await table.WriteAsync(new ThrottleState(key, Now, null, Now, "a"), CancellationToken.None);
        }

        var read = await table.ReadChangedSinceAsync(Now.AddMinutes(-1), CancellationToken.None);
        Assert.Equal(keys.Where(k => k.Length > 0).Order(StringComparer.Ordinal), read.Select(s => s.ShapingKey).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Partition_keys_use_only_characters_storage_accepts_and_keep_distinct_keys_apart()
    {
        Gen.String.Sample(key =>
        {
            var partition = ThrottleStateTable.PartitionOf(key);
            Assert.All(partition, c => Assert.True(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-' or '_' or '%' || char.IsAsciiHexDigitUpper(c), $"{c} in {partition}"));
            Assert.NotEmpty(partition);
        }, iter: 2000, threads: 1);
        Gen.Select(Gen.String, Gen.String).Sample((a, b) =>
            Assert.True(string.Equals(a.ToLowerInvariant(), b.ToLowerInvariant(), StringComparison.Ordinal) || ThrottleStateTable.PartitionOf(a) != ThrottleStateTable.PartitionOf(b), $"'{a}' and '{b}'"), iter: 2000, threads: 1);
    }
}
