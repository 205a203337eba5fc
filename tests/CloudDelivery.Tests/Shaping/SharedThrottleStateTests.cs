using CloudDelivery.Azure.Shaping;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Shaping;
using CloudDelivery.Tests.MtaSts;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Shaping;

/// <summary>Two instances (each its own storage clients and shaper) sharing throttle state through Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public class SharedThrottleStateTests(AzuriteFixture azurite)
{
    private sealed class Instance : IDisposable
    {
        public Instance(OutboundStorageOptions storage, ManualTimeProvider time, string name)
        {
            Shaper = new TrafficShaper(TrafficShapingRules.Default, time);
            Sharing = new SharedThrottleState(new ThrottleStateTable(new OutboundStorage(storage).Shaping), new EngineThrottleExchange(Shaper, time), time, name);
        }

        public TrafficShaper Shaper { get; }

        public SharedThrottleState Sharing { get; }

        public void Dispose() => Shaper.Dispose();
    }

    [Fact]
    public async Task A_pause_one_instance_saw_holds_on_the_other_after_one_round_each()
    {
        var storage = await azurite.NewStorageAsync();
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        using var a = new Instance(storage.Options, time, "a");
        using var b = new Instance(storage.Options, time, "b");
        var budgetAtA = a.Shaper.BudgetFor("contoso.example", "contoso-example.mail.protection.outlook.com");

        var pause = budgetAtA.NoteThrottled();
        await a.Sharing.RunRoundAsync(CancellationToken.None);
        await b.Sharing.RunRoundAsync(CancellationToken.None);

        // Another Microsoft-hosted domain at B spends the same budget: it is paused as long, at the lowered rate.
        var budgetAtB = b.Shaper.BudgetFor("fabrikam.example", "fabrikam-example.mail.protection.outlook.com");
        Assert.Equal("microsoft", budgetAtB.Key);
        Assert.Equal(time.GetUtcNow() + pause, budgetAtB.PausedUntil);
        Assert.NotNull(budgetAtB.Paused());
        Assert.Equal(a.Shaper.Snapshot().Single().CurrentPerMinute, b.Shaper.Snapshot().Single().CurrentPerMinute);
        Assert.True(b.Shaper.Snapshot().Single().CurrentPerMinute < TrafficShapingRules.Default.Rules.Single(r => r.Name == "microsoft").Limits.MessagesPerMinute);

        // An unrelated provider is not paused.
        Assert.Null(b.Shaper.BudgetFor("gmail.com", "gmail-smtp-in.l.google.com").Paused());
    }

    [Fact]
    public async Task An_applied_state_is_not_written_back_by_the_instance_that_applied_it()
    {
        var storage = await azurite.NewStorageAsync();
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        using var a = new Instance(storage.Options, time, "a");
        using var b = new Instance(storage.Options, time, "b");
        a.Shaper.BudgetFor("contoso.example", "mx.mail.protection.outlook.com").NoteThrottled();
        await a.Sharing.RunRoundAsync(CancellationToken.None);
        await b.Sharing.RunRoundAsync(CancellationToken.None);
        var table = new ThrottleStateTable(storage.Shaping);
        var first = await table.ReadAsync("microsoft", CancellationToken.None);

        time.Advance(TimeSpan.FromSeconds(30));
        await a.Sharing.RunRoundAsync(CancellationToken.None);
        await b.Sharing.RunRoundAsync(CancellationToken.None);

        // B applied A's row; neither wrote it again (B's applied pause is not B's own throttle).
        Assert.Equal(first, await table.ReadAsync("microsoft", CancellationToken.None));
        Assert.Equal("a", first!.Instance);
    }

    [Fact]
    public void Each_instance_takes_its_share_of_a_shared_rule_and_a_single_domain_budget_stays_whole()
    {
        var shared = TrafficShapingRules.Default.SharedBy(4);

        var microsoft = shared.Rules.Single(r => r.Name == "microsoft").Limits;
        Assert.Equal(new ShapingLimits(Connections: 2, MessagesPerConnection: 50, MessagesPerMinute: 30, MessagesPerHour: 1250), microsoft);
        Assert.Equal(TrafficShapingRules.Default.DefaultLimits, shared.DefaultLimits);
        Assert.Same(TrafficShapingRules.Default, TrafficShapingRules.Default.SharedBy(1));
    }
}
