using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Events;

/// <summary>Recipient events from the queue's transitions through the outbox to a sink, over Azurite and loopback SMTP.</summary>
[Collection(AzuriteCollection.Name)]
public class EventPipelineTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_delivery_emits_queued_then_delivered_with_sequences_and_the_documented_data()
    {
        var sink = new RecordingSink("test-delivered");
        await using var world = await EventWorld.StartAsync(azurite, [sink]);
        world.World.Network.Zone.AddMx("events.example", 10, "mx.events.example");
        await world.World.Network.AddMxServerAsync("mx.events.example");
        world.StartDispatcher();

        var submitted = await world.SubmitAsync("app@sender.example", ["rcpt@events.example"], new Dictionary<string, string> { ["order"] = "42" });
        await world.DrainAsync();
        await EventWorld.EventuallyAsync(() => sink.Events.Count == 2, "two events");
        await EventWorld.EventuallyAsync(async () => (await world.OutboxAsync()).Count == 0, "the outbox to empty");

        var id = submitted.Recipients[0].Id;
        var (queued, delivered) = (sink.Events[0], sink.Events[1]);
        Assert.Equal("CloudDelivery.Recipient.Queued", queued.GetProperty("type").GetString());
        Assert.Equal("CloudDelivery.Recipient.Delivered", delivered.GetProperty("type").GetString());
        Assert.Equal(["0000", "0001"], sink.Events.Select(e => e.GetProperty("sequence").GetString()));
        Assert.Equal($"{id}:0001", delivered.GetProperty("id").GetString());
        Assert.Equal("1.0", delivered.GetProperty("specversion").GetString());
        Assert.Equal("/clouddelivery/mta.loopback.test", delivered.GetProperty("source").GetString());
        Assert.Equal(id, delivered.GetProperty("subject").GetString());
        Assert.Equal("application/json", delivered.GetProperty("datacontenttype").GetString());
        Assert.True(DateTimeOffset.TryParse(delivered.GetProperty("time").GetString(), out _));
        var data = EventWorld.Data(delivered);
        Assert.Equal(submitted.MessageId, data.GetProperty("messageId").GetString());
        Assert.Equal(id, data.GetProperty("recipientId").GetString());
        Assert.Equal("events.example", data.GetProperty("recipientDomain").GetString());
        Assert.Equal("rcpt@events.example", data.GetProperty("recipient").GetString());
        Assert.Equal("app@sender.example", data.GetProperty("sender").GetString());
        Assert.Equal("42", data.GetProperty("tags").GetProperty("order").GetString());
        Assert.Equal(1, data.GetProperty("attempt").GetInt32());
        Assert.Equal(250, data.GetProperty("reply").GetProperty("code").GetInt32());
        Assert.Equal("mx.events.example", data.GetProperty("mxHost").GetString());
        Assert.Equal("opportunistic", data.GetProperty("tls").GetString());
        Assert.False(data.TryGetProperty("category", out _));
        Assert.Equal(0, EventWorld.Data(queued).GetProperty("attempt").GetInt32());
        Assert.False(EventWorld.Data(queued).TryGetProperty("reply", out _));
    }

    [Fact]
    public async Task A_permanent_failure_emits_failed_with_its_category()
    {
        var sink = new RecordingSink("test-failed");
        await using var world = await EventWorld.StartAsync(azurite, [sink]);
        world.World.Network.Zone.AddMx("gone.example", 10, "mx.gone.example");
        await world.World.Network.AddMxServerAsync("mx.gone.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.1.1", "no such user"));
        world.StartDispatcher();

        var submitted = await world.SubmitAsync("app@sender.example", ["nobody@gone.example"]);
        await world.DrainAsync();
        // (The DSN to the sender, a message of its own, has events too.)
        bool IsFailed(JsonElement e) => e.GetProperty("type").GetString() == "CloudDelivery.Recipient.Failed" && e.GetProperty("subject").GetString() == submitted.Recipients[0].Id;
        await EventWorld.EventuallyAsync(() => sink.Events.Any(IsFailed), "a failed event");

        var failed = sink.Events.Single(IsFailed);
        var data = EventWorld.Data(failed);
        Assert.Equal("bad-mailbox", data.GetProperty("category").GetString());
        Assert.Equal(550, data.GetProperty("reply").GetProperty("code").GetInt32());
        Assert.Equal("5.1.1", data.GetProperty("reply").GetProperty("enhancedCode").GetString());
        Assert.Equal("no such user", data.GetProperty("reply").GetProperty("text").GetString());
    }

    [Fact]
    public async Task With_addresses_off_events_carry_a_salted_hash_and_the_address_nowhere()
    {
        var sink = new RecordingSink("test-hash");
        const string salt = "a-salt-of-sixteen-or-more";
        await using var world = await EventWorld.StartAsync(azurite, [sink], new EventOptions { IncludeAddresses = false, AddressSalt = salt, DeleteDelay = TimeSpan.Zero });
        world.World.Network.Zone.AddMx("hashed.example", 10, "mx.hashed.example");
        // A reply that names the recipient, as many servers' do.
        await world.World.Network.AddMxServerAsync("mx.hashed.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.1.1", "<Secret.Person@hashed.example> unknown"));
        world.StartDispatcher();

        var submitted = await world.SubmitAsync("app@sender.example", ["Secret.Person@hashed.example"]);
        await world.DrainAsync();
        await EventWorld.EventuallyAsync(() => sink.Events.Count(e => e.GetProperty("subject").GetString() == submitted.Recipients[0].Id) == 2, "the recipient's two events");

        var expected = Convert.ToHexStringLower(SHA256.HashData([.. Encoding.UTF8.GetBytes(salt), .. Encoding.UTF8.GetBytes("Secret.Person@hashed.example")]));
        foreach (var batch in sink.Batches.SelectMany(b => b))
        {
            var json = Encoding.UTF8.GetString(batch.Json.Span);
            Assert.DoesNotContain("secret.person", json, StringComparison.OrdinalIgnoreCase);
            var data = EventWorld.Data(JsonDocument.Parse(json).RootElement);
            Assert.False(data.TryGetProperty("recipient", out _));
            if (data.GetProperty("recipientId").GetString() == submitted.Recipients[0].Id)
            {
                Assert.Equal(expected, data.GetProperty("recipientHash").GetString());
            }
        }
    }

    [Fact]
    public void Addresses_off_without_a_long_enough_salt_fails_validation_naming_the_setting()
    {
        var result = new EventOptionsValidator().Validate(null, new EventOptions { IncludeAddresses = false, AddressSalt = "short" });

        Assert.True(result.Failed);
        Assert.Contains("CloudDelivery:Events:AddressSalt", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new EventOptionsValidator().Validate(null, new EventOptions()).Succeeded);
    }

    [Fact]
    public async Task A_sink_that_refuses_at_first_gets_every_event_later_and_mail_was_not_held_up()
    {
        var sink = new RecordingSink("test-refusing") { RefuseFirst = 3 };
        await using var world = await EventWorld.StartAsync(azurite, [sink]);
        world.World.Network.Zone.AddMx("slow-sink.example", 10, "mx.slow-sink.example");
        var mx = await world.World.Network.AddMxServerAsync("mx.slow-sink.example");
        world.StartDispatcher();

        var submitted = await world.SubmitAsync("app@sender.example", ["a@slow-sink.example", "b@slow-sink.example"]);
        await world.DrainAsync();

        // Delivered while the sink was still refusing: its backoff runs on a clock nobody has moved yet.
        Assert.Single(mx.Messages);
        foreach (var recipient in submitted.Recipients)
        {
            Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(recipient.Id, CancellationToken.None))!.State);
        }
        await EventWorld.EventuallyAsync(() => sink.Refused >= 1, "a refusal");
        Assert.Empty(sink.Batches);

        await EventWorld.EventuallyAsync(() => sink.Events.Count >= 4, "all four events", () => world.EventTime.Advance(TimeSpan.FromSeconds(1)));
        var ids = sink.Events.Select(e => e.GetProperty("id").GetString()!).ToHashSet();
        Assert.Equal(submitted.Recipients.SelectMany(r => new[] { $"{r.Id}:0000", $"{r.Id}:0001" }).ToHashSet(), ids);
        Assert.Equal(3, sink.Refused);
        await EventWorld.EventuallyAsync(async () => (await world.OutboxAsync()).Count == 0, "the outbox to empty");
    }

    [Fact]
    public async Task Events_of_a_sink_down_past_the_retention_are_parked_and_replay_brings_them_back()
    {
        var sink = new RecordingSink($"test-parking-{Guid.NewGuid():N}") { Down = true };
        var healthy = new RecordingSink($"test-healthy-{Guid.NewGuid():N}");
        await using var world = await EventWorld.StartAsync(azurite, [sink, healthy], new EventOptions { DeleteDelay = TimeSpan.Zero, AdoptAfter = TimeSpan.Zero });
        world.World.Network.Zone.AddMx("parked.example", 10, "mx.parked.example");
        await world.World.Network.AddMxServerAsync("mx.parked.example");
        world.StartDispatcher();

        var submitted = await world.SubmitAsync("app@sender.example", ["p@parked.example"]);
        await world.DrainAsync();
        await EventWorld.EventuallyAsync(() => healthy.Events.Count == 2, "the healthy sink's events");
        world.EventTime.Advance(world.Options.Retention + TimeSpan.FromMinutes(1));
        await EventWorld.EventuallyAsync(async () => await CountAsync(world.Dispatcher.Parked.ListAsync(sink.Name, CancellationToken.None)) == 2, "two parked events", () => world.EventTime.Advance(TimeSpan.FromMinutes(5)));
        await EventWorld.EventuallyAsync(async () => (await world.OutboxAsync()).Count == 0, "the outbox to empty once every sink took or parked its events");
        Assert.Empty(sink.Batches);

        // Without --yes, and stdin not a terminal, nothing moves.
        var storage = world.World.Storage.Options;
        string[] settings = ["--storage", azurite.ConnectionString, "--set", $"CloudDelivery:Storage:RecipientsTable={storage.RecipientsTable}"];
        var refused = await RunCliAsync(["events", "replay", "--sink", sink.Name, .. settings]);
        Assert.Equal(64, refused.Exit);
        var listed = await RunCliAsync(["events", "parked", "--sink", sink.Name, "--json", .. settings]);
        Assert.Contains($"{submitted.Recipients[0].Id}:0001", listed.Output, StringComparison.Ordinal);

        var replayed = await RunCliAsync(["events", "replay", "--sink", sink.Name, "--yes", .. settings]);
        Assert.Equal(0, replayed.Exit);
        Assert.Equal(2, (await world.OutboxAsync()).Count);
        Assert.All(await world.OutboxAsync(), e => Assert.Equal(sink.Name, e.Sinks));
        var pending = await RunCliAsync(["events", "pending", .. settings]);
        Assert.Contains("2 event(s) pending", pending.Output, StringComparison.Ordinal);

        sink.Down = false;
        world.EventTime.Advance(TimeSpan.FromHours(1));
        Assert.Equal(2, await world.Dispatcher.SweepAsync(CancellationToken.None));
        await EventWorld.EventuallyAsync(() => sink.Events.Count == 2, "the replayed events", () => world.EventTime.Advance(TimeSpan.FromMinutes(5)));
        Assert.Equal(2, healthy.Events.Count); // the replay was for the parking sink only
        Assert.Equal(0, await CountAsync(world.Dispatcher.Parked.ListAsync(sink.Name, CancellationToken.None)));
        await EventWorld.EventuallyAsync(async () => (await world.OutboxAsync()).Count == 0, "the outbox to empty after the replay");
    }

    [Fact]
    public async Task Events_stored_by_a_writer_that_crashed_before_publishing_are_published_by_the_sweep()
    {
        var sink = new RecordingSink("test-orphans");
        // The writer's process never hands its events over (it "crashed" right after each write).
        await using var crashed = await EventWorld.StartAsync(azurite, [sink], handOver: false);
        crashed.World.Network.Zone.AddMx("orphans.example", 10, "mx.orphans.example");
        await crashed.World.Network.AddMxServerAsync("mx.orphans.example");
        await crashed.SubmitAsync("app@sender.example", ["o@orphans.example"]);
        await crashed.DrainAsync();
        Assert.Equal(2, (await crashed.OutboxAsync()).Count);

        // A fresh dispatcher over the same storage: young rows are left to their writer, older ones adopted.
        var fresh = new EventDispatcher(crashed.World.Storage, [sink], crashed.Options, crashed.EventTime);
        Assert.Equal(0, await fresh.SweepAsync(CancellationToken.None));
        crashed.EventTime.Advance(crashed.Options.AdoptAfter + TimeSpan.FromSeconds(1));
        using var stop = new CancellationTokenSource();
        var running = fresh.RunAsync(stop.Token);
        Assert.Equal(2, await fresh.SweepAsync(CancellationToken.None));
        Assert.Equal(0, await fresh.SweepAsync(CancellationToken.None)); // already in hand
        await EventWorld.EventuallyAsync(() => sink.Events.Count == 2, "the orphans");
        Assert.Equal(["CloudDelivery.Recipient.Queued", "CloudDelivery.Recipient.Delivered"], sink.Events.Select(e => e.GetProperty("type").GetString()));
        await EventWorld.EventuallyAsync(async () => (await crashed.OutboxAsync()).Count == 0, "the outbox to empty");
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public async Task Operator_drop_writes_a_dropped_event_in_the_same_write()
    {
        var sink = new RecordingSink("test-dropped");
        await using var world = await EventWorld.StartAsync(azurite, [sink], handOver: false);
        var submitted = await world.SubmitAsync("app@sender.example", ["d@not-delivered.example"]);

        var record = (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!;
        record.State = RecipientState.Dropped;
        record.AddEvent(world.World.Time.GetUtcNow(), "dropped", "removed by an operator");
        await world.Queue.SaveAsync([record]);

        var outbox = await world.OutboxAsync();
        Assert.Equal([$"{record.Id}:0000", $"{record.Id}:0001"], outbox.Select(e => e.Event.Id));
        var dropped = JsonDocument.Parse(outbox[1].Event.Json).RootElement;
        Assert.Equal("CloudDelivery.Recipient.Dropped", dropped.GetProperty("type").GetString());
    }

    private static async Task<int> CountAsync<T>(IAsyncEnumerable<T> items)
    {
        var count = 0;
        await foreach (var _ in items)
        {
            count++;
        }
        return count;
    }

    private static async Task<(int Exit, string Output)> RunCliAsync(string[] args)
    {
        using var output = new StringWriter();
        var exit = await CloudDelivery.Cli.CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }
}
