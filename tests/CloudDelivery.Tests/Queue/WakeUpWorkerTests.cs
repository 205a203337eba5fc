using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Tests.Queue;

[Collection(AzuriteCollection.Name)]
public class WakeUpWorkerTests(AzuriteFixture azurite)
{
    private static WakeUpWorker Worker(QueueWorld world, int maxDequeueCount = 5) =>
        new(world.Queue, world.Handler, new WakeUpWorkerOptions { MaxDequeueCount = maxDequeueCount, VisibilityTimeout = TimeSpan.FromSeconds(1) });

    [Fact]
    public async Task Malformed_wake_up_goes_to_the_poison_queue_and_the_rest_is_delivered()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("ok.example", 10, "mx.ok.example");
        var mx = await world.Network.AddMxServerAsync("mx.ok.example");
        await world.Storage.WakeUps.SendMessageAsync("{not a wake-up");
        await world.SubmitAsync("s@sender.example", ["r@ok.example"]);

        while (await Worker(world).PollOnceAsync(CancellationToken.None) > 0)
        {
        }

        Assert.Single(mx.Messages);
        var poisoned = (await world.Storage.Poison.ReceiveMessagesAsync(10)).Value;
        Assert.Equal("{not a wake-up", Assert.Single(poisoned).Body.ToString());
    }

    [Fact]
    public async Task Wake_up_that_keeps_failing_is_poisoned_after_the_maximum_tries()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        // Every try fails: the table is gone (think of a misconfigured deployment).
        await world.Queue.WakeAsync("crash.example", TimeSpan.Zero, CancellationToken.None);
        await world.Storage.Recipients.DeleteAsync();
        var worker = Worker(world, maxDequeueCount: 2);

        for (var i = 0; i < 20 && (await world.Storage.Poison.PeekMessagesAsync(1)).Value.Length == 0; i++)
        {
            await worker.PollOnceAsync(CancellationToken.None);
            await Task.Delay(300);
        }

        Assert.Single((await world.Storage.Poison.PeekMessagesAsync(10)).Value);
    }

    [Fact]
    public async Task Worker_dying_right_after_the_250_does_not_deliver_again()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("once.example", 10, "mx.once.example");
        var mx = await world.Network.AddMxServerAsync("mx.once.example");
        var submitted = await world.SubmitAsync("s@sender.example", ["r@once.example"]);
        world.Handler.AfterResultsSaved = () => throw new InvalidOperationException("worker killed after the server said 250");

        await Assert.ThrowsAsync<InvalidOperationException>(() => world.Handler.HandleAsync(new WakeUp("once.example"), CancellationToken.None));
        world.Handler.AfterResultsSaved = null;
        // Whatever the dead worker left (its lease, its wake-up) runs out; another worker takes the domain.
        world.Time.Advance(TimeSpan.FromMinutes(30));
        await world.Queue.WakeAsync("once.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();

        Assert.Single(mx.Messages);
        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!.State);
    }

    [Fact]
    public async Task Sweeper_wakes_domains_whose_wake_up_was_lost()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("lost.example", 10, "mx.lost.example");
        var mx = await world.Network.AddMxServerAsync("mx.lost.example");
        await world.SubmitAsync("s@sender.example", ["r@lost.example"]);
        await world.Storage.WakeUps.ClearMessagesAsync();
        world.Time.Advance(TimeSpan.FromMinutes(2));

        var swept = await Worker(world).SweepAsync(CancellationToken.None);
        await world.DrainAsync();

        Assert.Equal(1, swept);
        Assert.Single(mx.Messages);
    }
}
