using CloudDelivery.Azure.Queue;
using CloudDelivery.Loopback.Smtp;

namespace CloudDelivery.Tests.Queue;

/// <summary>The purge: final records go after the retention, bodies as soon as no queued recipient needs them.</summary>
[Collection(AzuriteCollection.Name)]
public class QueuePurgeTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Final_records_go_after_the_retention_and_bodies_once_no_queued_recipient_needs_them()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("done.example", 10, "mx.done.example").AddMx("later.example", 10, "mx.later.example");
        await world.Network.AddMxServerAsync("mx.done.example");
        var accepting = false;
        await world.Network.AddMxServerAsync("mx.later.example", o => o.OnRcpt = _ => accepting ? null : new SmtpServerReply(451, "4.3.0", "try later"));
        var large = "From: <s@sender.example>\r\nSubject: large\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 998) + "\r\n", 60));

        // A large single-domain message (its body is a blob) that is delivered...
        var delivered = await world.SubmitAsync("s@sender.example", ["big@done.example"], large);
        var small = await world.SubmitAsync("s@sender.example", ["small@done.example"]);
        world.Time.Advance(TimeSpan.FromHours(2));
        // ...and, later, a message for two domains (a blob) of which one recipient stays queued.
        var split = await world.SubmitAsync("s@sender.example", ["now@done.example", "later@later.example"]);
        await world.DrainAsync();
        Assert.Equal(RecipientState.Queued, (await world.Queue.FindAsync(split.Recipients[1].Id, CancellationToken.None))!.State);
        var purger = new QueuePurger(world.Queue);

        // Within the retention nothing final is deleted; the delivered message's body is no longer needed.
        // (This run goes through the Functions timer's method.)
        var early = await new CloudDelivery.Functions.PurgeFunctions(purger).PurgeFinalRecords(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);
        Assert.Equal(0, early.Records);
        Assert.True(await Exists(world, small.Recipients[0].Id));
        Assert.False(await BlobExists(world, delivered.MessageId));
        Assert.True(await BlobExists(world, split.MessageId));

        // After the retention the final records go; the queued one, its body and the lease rows stay.
        world.Time.Advance(world.Queue.Options.Retention + TimeSpan.FromDays(1));
        var late = await purger.PurgeAsync(CancellationToken.None);
        Assert.Equal(3, late.Records);
        Assert.False(await Exists(world, small.Recipients[0].Id));
        Assert.False(await Exists(world, delivered.Recipients[0].Id));
        Assert.False(await Exists(world, split.Recipients[0].Id));
        Assert.True(await Exists(world, split.Recipients[1].Id));
        Assert.True(await BlobExists(world, split.MessageId));
        Assert.Contains(world.Storage.Recipients.Query<global::Azure.Data.Tables.TableEntity>(e => e.RowKey == RecipientRecord.LeaseRowKey), _ => true);

        // The last recipient is delivered on retry; its body goes at the next purge.
        accepting = true;
        world.Time.Advance(TimeSpan.FromDays(1));
        await world.Queue.WakeAsync("later.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();
        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(split.Recipients[1].Id, CancellationToken.None))!.State);
        var last = await purger.PurgeAsync(CancellationToken.None);
        Assert.Equal(1, last.Bodies);
        Assert.False(await BlobExists(world, split.MessageId));
    }

    [Fact]
    public async Task A_purge_while_a_run_is_still_going_keeps_the_body_its_bounce_quotes()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("bounce.example", 10, "mx.bounce.example").AddMx("sender.example", 10, "mx.sender.example");
        var reply = new SmtpServerReply(451, "4.3.0", "try later");
        await world.Network.AddMxServerAsync("mx.bounce.example", o => o.OnRcpt = _ => reply);
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");
        var large = "From: <s@sender.example>\r\nSubject: large\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 998) + "\r\n", 60));
        var submitted = await world.SubmitAsync("s@sender.example", ["gone@bounce.example"], large);
        await world.DrainAsync();
        Assert.Equal(RecipientState.Queued, (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!.State);

        // The retry, hours later, fails for good; the daily purge runs after the outcome is saved and
        // before the run has composed its bounce (which quotes the message).
        world.Time.Advance(TimeSpan.FromHours(3));
        reply = new SmtpServerReply(550, "5.1.1", "no such user");
        var purger = new QueuePurger(world.Queue);
        world.Handler.AfterResultsSaved = async () =>
        {
            world.Handler.AfterResultsSaved = null;
            await purger.PurgeAsync(CancellationToken.None);
        };
        await world.Queue.WakeAsync("bounce.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();

        Assert.Equal(RecipientState.Failed, (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!.State);
        Assert.Single(senderMx.Messages);
        // Once the run is long over, the body goes.
        world.Time.Advance(TimeSpan.FromHours(2));
        await purger.PurgeAsync(CancellationToken.None);
        Assert.False(await BlobExists(world, submitted.MessageId));
    }

    [Fact]
    public async Task A_final_record_holding_its_message_inline_stays_while_a_sibling_is_queued()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Queue.Options.Retention = TimeSpan.FromHours(1);
        world.Network.Zone.AddMx("split.example", 10, "mx.split.example");
        var accepting = false;
        var mx = await world.Network.AddMxServerAsync("mx.split.example", o => o.OnRcpt = r => accepting || r.Recipient.Contains("first@", StringComparison.Ordinal) ? null : new SmtpServerReply(451, "4.3.0", "try later"));
        // A small message for one domain: its body is kept inline in the first record, which is delivered.
        var submitted = await world.SubmitAsync("s@sender.example", ["first@split.example", "second@split.example"]);
        await world.DrainAsync();
        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!.State);
        Assert.Equal(RecipientState.Queued, (await world.Queue.FindAsync(submitted.Recipients[1].Id, CancellationToken.None))!.State);

        // Past the (short) retention, while the second recipient still waits for its retry.
        world.Time.Advance(TimeSpan.FromHours(2));
        await new QueuePurger(world.Queue).PurgeAsync(CancellationToken.None);

        accepting = true;
        await world.Queue.WakeAsync("split.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();
        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(submitted.Recipients[1].Id, CancellationToken.None))!.State);
        Assert.Equal(2, mx.Messages.Count);
        // Once no recipient of the message is queued, the final records go.
        world.Time.Advance(TimeSpan.FromHours(2));
        Assert.Equal(2, (await new QueuePurger(world.Queue).PurgeAsync(CancellationToken.None)).Records);
    }

    [Fact]
    public async Task A_purge_while_a_run_is_still_going_keeps_the_inline_body_its_bounce_quotes()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Queue.Options.Retention = TimeSpan.FromHours(1);
        world.Network.Zone.AddMx("inline-bounce.example", 10, "mx.inline-bounce.example").AddMx("sender.example", 10, "mx.sender.example");
        var second = new SmtpServerReply(451, "4.3.0", "try later");
        await world.Network.AddMxServerAsync("mx.inline-bounce.example", o => o.OnRcpt = r => r.Recipient.Contains("first@", StringComparison.Ordinal) ? null : second);
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");
        // The first recipient, which holds the inline body, is delivered; the second waits.
        var submitted = await world.SubmitAsync("s@sender.example", ["first@inline-bounce.example", "second@inline-bounce.example"]);
        await world.DrainAsync();

        // Past the retention the second fails for good; the purge runs before the run composes the bounce.
        world.Time.Advance(TimeSpan.FromHours(3));
        second = new SmtpServerReply(550, "5.1.1", "no such user");
        world.Handler.AfterResultsSaved = async () =>
        {
            world.Handler.AfterResultsSaved = null;
            await new QueuePurger(world.Queue).PurgeAsync(CancellationToken.None);
        };
        await world.Queue.WakeAsync("inline-bounce.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();

        // (The records themselves may be gone: the test's clock is hours ahead of the service's timestamps.)
        var bounce = Assert.Single(senderMx.Messages);
        Assert.Contains("second@inline-bounce.example", System.Text.Encoding.UTF8.GetString(bounce.Data), StringComparison.Ordinal);
    }

    private static async Task<bool> Exists(QueueWorld world, string id) => await world.Queue.FindAsync(id, CancellationToken.None) is not null;

    private static async Task<bool> BlobExists(QueueWorld world, string messageId) => (await world.Storage.Bodies.GetBlobClient(messageId).ExistsAsync()).Value;
}
