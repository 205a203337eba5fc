using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;

namespace CloudDelivery.Tests.Queue;

[Collection(AzuriteCollection.Name)]
public class WakeUpWorkerTests(AzuriteFixture azurite)
{
    private static WakeUpWorker Worker(QueueWorld world, int maxDequeueCount = 5) =>
        new(world.Queue, world.Handler, new WakeUpWorkerOptions { MaxDequeueCount = maxDequeueCount, VisibilityTimeout = TimeSpan.FromSeconds(1) });

    [Fact]
    public async Task Wake_up_delayed_by_a_fraction_of_a_second_is_never_visible_early()
    {
        // Queue storage counts visibility in whole seconds and the client truncates: 3.5 s became 3 s, so a
        // window's trailing wake-up ran before the window's last submissions and left them for the sweeper.
        await using var world = await QueueWorld.StartAsync(azurite);
        var sent = System.Diagnostics.Stopwatch.StartNew();
        await world.Queue.WakeAsync("late.example", TimeSpan.FromSeconds(3.5), CancellationToken.None);

        // Measured from before the send, so the server's own count started no earlier than ours.
        await Task.Delay(TimeSpan.FromSeconds(3.2) - sent.Elapsed);
        Assert.Empty((await world.Storage.WakeUps.PeekMessagesAsync(10)).Value);

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await world.Storage.WakeUps.PeekMessagesAsync(10)).Value.Length == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
        Assert.Single((await world.Storage.WakeUps.PeekMessagesAsync(10)).Value);
        Assert.True(sent.Elapsed >= TimeSpan.FromSeconds(3.5), $"visible after {sent.Elapsed}");
    }

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
    public async Task Worker_dying_while_parallel_sessions_deliver_delivers_nothing_twice()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("many.example", 10, "mx.many.example");
        var mx = await world.Network.AddMxServerAsync("mx.many.example");
        for (var i = 0; i < 24; i++)
        {
            await world.SubmitAsync("s@sender.example", [$"r{i}@many.example"], $"Subject: {i}\r\n\r\nbody {i}\r\n");
        }
        // The run's sessions record outcomes concurrently; the third recording "kills" the worker.
        var saves = 0;
        world.Handler.AfterResultsSaved = () => Interlocked.Increment(ref saves) == 3 ? throw new InvalidOperationException("worker killed after the server said 250") : Task.CompletedTask;

        await Assert.ThrowsAsync<InvalidOperationException>(() => world.Handler.HandleAsync(new WakeUp("many.example"), CancellationToken.None));
        world.Handler.AfterResultsSaved = null;
        Assert.True(mx.ConnectionCount > 1, "the run used parallel sessions");
        Assert.InRange(mx.Messages.Count, 3, 23); // the others stopped after the transaction they were in
        world.Time.Advance(TimeSpan.FromMinutes(30));
        await world.Queue.WakeAsync("many.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();

        Assert.Equal(24, mx.Messages.Count);
        Assert.Equal(24, mx.Messages.SelectMany(m => m.Recipients).Distinct().Count());
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

    [Fact]
    public async Task An_idle_worker_polls_at_once_when_its_own_process_sends_a_wake_up()
    {
        // The worker's clock is a fake that never moves: its idle back-off never ends by itself, so only the
        // in-process signal of the submission's wake-up can make it poll again.
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("signal.example", 10, "mx.signal.example");
        var mx = await world.Network.AddMxServerAsync("mx.signal.example");
        var frozen = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var queue = new OutboundQueue(world.Storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero }, frozen);
        var handler = new DomainDeliveryHandler(queue, world.Engine, "mta.loopback.test");
        var worker = new WakeUpWorker(queue, handler, new WakeUpWorkerOptions { MaxPollingInterval = TimeSpan.FromHours(1) });
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var running = worker.RunAsync(stop.Token);
        await Task.Delay(500); // the first poll finds the queue empty and the worker goes to sleep

        await queue.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = ["r@signal.example"], Message = new MemoryStream("Subject: signal\r\n\r\nhi\r\n"u8.ToArray()) }, CancellationToken.None);
        while (mx.Messages.Count == 0 && !stop.IsCancellationRequested)
        {
            await Task.Delay(50);
        }

        await stop.CancelAsync();
        await running;
        Assert.Single(mx.Messages);
    }
}
