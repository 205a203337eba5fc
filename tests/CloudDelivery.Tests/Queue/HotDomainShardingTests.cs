using System.Text;
using System.Text.Json;
using Azure;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Submission;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// Hot-domain sharding on Azurite: a domain's new records spread over shards (partition and lease per
/// shard), delivered by independent workers, each recipient once, across crashes and resumed submissions.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class HotDomainShardingTests(AzuriteFixture azurite)
{
    private static string Body(string to) => $"From: <s@sender.example>\r\nTo: <{to}>\r\nSubject: sharded\r\nMessage-ID: <{Guid.NewGuid():N}@sender.example>\r\n\r\nHello.\r\n";

    private static async Task<List<SubmissionResult>> SubmitManyAsync(QueueWorld world, string domain, int count)
    {
        var results = new List<SubmissionResult>();
        for (var i = 0; i < count; i++)
        {
            results.Add(await world.SubmitAsync("s@sender.example", [$"r{i}@{domain}"], Body($"r{i}@{domain}")));
        }
        return results;
    }

    private static string PartitionOf(SubmissionResult result) => result.Recipients[0].Id[..result.Recipients[0].Id.IndexOf('/', StringComparison.Ordinal)];

    [Fact]
    public async Task A_pinned_domain_spreads_messages_over_its_shards_and_every_recipient_is_delivered_once()
    {
        await using var world = await QueueWorld.StartAsync(azurite, o => o.Shards = "hot.example=4");
        world.Network.Zone.AddMx("hot.example", 10, "mx.hot.example");
        var mx = await world.Network.AddMxServerAsync("mx.hot.example");

        var submitted = await SubmitManyAsync(world, "hot.example", 40);
        var partitions = submitted.Select(PartitionOf).ToHashSet();
        Assert.Subset(new HashSet<string> { "hot.example", "hot.example~1", "hot.example~2", "hot.example~3" }, partitions);
        Assert.True(partitions.Count >= 3, $"40 messages landed in {partitions.Count} of 4 shards");

        // Two workers take wake-ups off the one queue at once, as two instances do.
        await Task.WhenAll(world.DrainAsync(), world.DrainAsync());

        Assert.Equal(40, mx.Messages.Count);
        Assert.Equal(submitted.Select(s => s.Recipients[0].Recipient).Order(), mx.Messages.SelectMany(m => m.Recipients).Order());
        foreach (var result in submitted)
        {
            var record = await world.Queue.FindAsync(result.Recipients[0].Id, CancellationToken.None);
            Assert.Equal(RecipientState.Delivered, record!.State);
            Assert.Equal("hot.example", record.Domain);
        }
    }

    [Fact]
    public async Task Each_shard_has_its_own_lease_so_a_busy_shard_does_not_hold_the_others_up()
    {
        await using var world = await QueueWorld.StartAsync(azurite, o => o.Shards = "hot.example=2");
        world.Network.Zone.AddMx("hot.example", 10, "mx.hot.example");
        var mx = await world.Network.AddMxServerAsync("mx.hot.example");
        var submitted = await SubmitManyAsync(world, "hot.example", 20);
        // Another worker is delivering shard 0.
        var (held, _, _) = await DomainLease.TryAcquireAsync(world.Storage.Recipients, world.Time, "hot.example", TimeSpan.FromMinutes(5), CancellationToken.None);
        Assert.NotNull(held);

        await world.DrainAsync();

        var inShard1 = submitted.Where(s => PartitionOf(s) == "hot.example~1").Select(s => s.Recipients[0].Recipient).Order().ToList();
        Assert.NotEmpty(inShard1);
        Assert.Equal(inShard1, mx.Messages.SelectMany(m => m.Recipients).Order());
        // Shard 0 is served once its holder lets go.
        await held!.ReleaseAsync(CancellationToken.None);
        await world.Queue.WakeAsync("hot.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();
        Assert.Equal(20, mx.Messages.Count);
    }

    [Fact]
    public async Task A_worker_that_crashes_after_saving_outcomes_in_a_shard_never_delivers_a_recipient_twice()
    {
        await using var world = await QueueWorld.StartAsync(azurite, o => o.Shards = "hot.example=4");
        world.Network.Zone.AddMx("hot.example", 10, "mx.hot.example");
        var mx = await world.Network.AddMxServerAsync("mx.hot.example");
        var submitted = await SubmitManyAsync(world, "hot.example", 24);

        // The first run to save outcomes crashes right after (its lease is left held, its wake-up unacknowledged).
        var crashed = 0;
        world.Handler.AfterResultsSaved = () => Interlocked.Exchange(ref crashed, 1) == 0 ? throw new IOException("worker crashed") : Task.CompletedTask;
        await Assert.ThrowsAsync<IOException>(() => world.DrainAsync());
        world.Handler.AfterResultsSaved = null;
        // The lease expires; the sweeper wakes every partition with due records.
        world.Time.Advance(TimeSpan.FromMinutes(10));
        await new CloudDelivery.Azure.WakeUps.WakeUpWorker(world.Queue, world.Handler, new CloudDelivery.Azure.WakeUps.WakeUpWorkerOptions()).SweepAsync(CancellationToken.None);
        await world.DrainAsync();

        var delivered = mx.Messages.SelectMany(m => m.Recipients).ToList();
        Assert.Equal(delivered.Distinct().Count(), delivered.Count);
        Assert.Equal(submitted.Select(s => s.Recipients[0].Recipient).Order(), delivered.Order());
    }

    [Fact]
    public async Task A_run_that_finds_a_backlog_marks_its_domain_hot_for_every_process_until_it_cools_down()
    {
        await using var world = await QueueWorld.StartAsync(azurite, o =>
        {
            o.HotDomainBacklog = 5;
            o.MaxShards = 4;
            o.HotDomainFor = TimeSpan.FromMinutes(15);
        });
        world.Network.Zone.AddMx("busy.example", 10, "mx.busy.example");
        var mx = await world.Network.AddMxServerAsync("mx.busy.example");
        // Another process on the same storage, which has read the (empty) hot set already.
        var other = new OutboundQueue(world.Storage, world.Queue.Options, world.Time);
        await other.HotDomains.RefreshAsync(CancellationToken.None);
        Assert.Equal(1, other.HotDomains.ShardsOf("busy.example"));

        // Below the threshold nothing changes; at it, the run marks the domain hot.
        await SubmitManyAsync(world, "busy.example", 4);
        await world.DrainAsync();
        Assert.Equal(1, world.Queue.HotDomains.ShardsOf("busy.example"));
        var backlog = await SubmitManyAsync(world, "busy.example", 5);
        Assert.All(backlog, s => Assert.Equal("busy.example", PartitionOf(s)));
        await world.DrainAsync();
        Assert.Equal(4, world.Queue.HotDomains.ShardsOf("busy.example"));

        // This process spreads at once; the other after its next read of the hot set (its hosts' loop).
        Assert.True((await SubmitManyAsync(world, "busy.example", 20)).Select(PartitionOf).Distinct().Count() > 1);
        Assert.Equal(1, other.HotDomains.ShardsOf("busy.example"));
        await other.HotDomains.RefreshAsync(CancellationToken.None);
        Assert.Equal(4, other.HotDomains.ShardsOf("busy.example"));
        await world.DrainAsync();

        // Without a backlog the mark runs out: new records go to the domain's own partition again, and
        // records left in the shards are still delivered by their wake-ups.
        var late = await SubmitManyAsync(world, "busy.example", 3);
        world.Time.Advance(TimeSpan.FromMinutes(16));
        Assert.Equal(1, world.Queue.HotDomains.ShardsOf("busy.example"));
        Assert.All(await SubmitManyAsync(world, "busy.example", 3), s => Assert.Equal("busy.example", PartitionOf(s)));
        await world.DrainAsync();
        Assert.Equal(4 + 5 + 20 + 3 + 3, mx.Messages.Count);
        Assert.All(late, s => Assert.Equal(RecipientState.Delivered, world.Queue.FindAsync(s.Recipients[0].Id, CancellationToken.None).Result!.State));
    }

    [Fact]
    public async Task Queue_commands_by_domain_and_domain_status_cover_every_shard()
    {
        await using var world = await QueueWorld.StartAsync(azurite, o => o.Shards = "hot.example=4");
        var submitted = await SubmitManyAsync(world, "hot.example", 16);
        await SubmitManyAsync(world, "hot.example.net", 2);
        var actions = new OperatorActions(world.Queue, "mta.loopback.test");

        var listed = new List<RecipientRecord>();
        await foreach (var record in actions.ListAsync(new QueueSelection { Domain = "HOT.example" }, CancellationToken.None))
        {
            listed.Add(record);
        }
        Assert.Equal(submitted.Select(s => s.Recipients[0].Id).Order(), listed.Select(r => r.Id).Order());

        var held = await actions.ApplyAsync(OperatorAction.Hold, listed, CancellationToken.None);
        Assert.Equal(16, held.Changed.Count);
        Assert.All(submitted, s => Assert.Equal(RecipientState.Held, world.Queue.FindAsync(s.Recipients[0].Id, CancellationToken.None).Result!.State));
        Assert.Equal(4, world.Queue.HotDomains.ShardsOf("hot.example"));
    }

    [Fact]
    public async Task A_resumed_submission_finds_what_its_first_try_stored_in_a_shard_and_stores_nothing_twice()
    {
        await using var world = await QueueWorld.StartAsync(azurite, o => o.Shards = "hot.example=4");
        // The first try runs on an instance that shards hot.example, and its reply is lost after the records are stored.
        var first = new IdempotentSubmission(world.Queue) { AfterStoredForTests = _ => throw new RequestFailedException(503, "the reply was lost") };
        // The client's retry reaches an instance whose hot set does not (yet) have the domain.
        var unsharded = new OutboundQueue(world.Storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero, HotDomainBacklog = 0 }, world.Time);
        var retry = new IdempotentSubmission(unsharded, staleAfter: TimeSpan.Zero);
        var inShards = 0;
        for (var i = 0; i < 12; i++)
        {
            var key = $"resume-{i}";
            SubmissionRequest Request() => new()
            {
                Sender = "s@sender.example",
                Recipients = [$"a{i}@hot.example", $"b{i}@hot.example", $"c{i}@plain.example"],
                Message = new MemoryStream(Encoding.UTF8.GetBytes(Body($"a{i}@hot.example"))),
            };
            await Assert.ThrowsAsync<RequestFailedException>(() => first.SubmitAsync(key, Request(), CancellationToken.None));

            var answer = await retry.SubmitAsync(key, Request(), CancellationToken.None);

            Assert.Equal(202, answer.Status);
            using var json = JsonDocument.Parse(answer.Json);
            var messageId = json.RootElement.GetProperty("messageId").GetString()!;
            var records = await world.Queue.FindMessageAsync(messageId, CancellationToken.None);
            Assert.Equal(3, records.Count);
            var hotPartition = records.First(r => r.Domain == "hot.example").PartitionKey;
            inShards += hotPartition == "hot.example" ? 0 : 1;
            // The answer names the records where they are.
            var ids = json.RootElement.GetProperty("recipients").EnumerateArray().Select(r => r.GetProperty("id").GetString()).Order();
            Assert.Equal(records.Select(r => r.Id).Order(), ids);
        }
        // With 4 shards, 3 in 4 messages go to a shard other than the domain's own partition.
        Assert.True(inShards > 0);
    }
}
