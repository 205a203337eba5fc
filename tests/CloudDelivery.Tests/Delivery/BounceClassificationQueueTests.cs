using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Delivery;
using CloudDelivery.Dsn;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Queue;
using MimeKit;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// The category through the queue on Azurite and real loopback servers: decided by the engine's
/// configured classifier, stored on the record, shown by status and the API, and told in the DSN.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class BounceClassificationQueueTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task The_configured_rules_decide_the_category_stored_on_the_record_shown_in_status_and_told_in_the_dsn()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("retired.example", 10, "mx.retired.example").AddMx("busy.example", 10, "mx.busy.example").AddMx("sender.example", 10, "mx.sender.example");
        // A receiver whose code says "policy" (5.7.1) while its text says the mailbox is gone: the operator knows.
        await world.Network.AddMxServerAsync("mx.retired.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.7.1", "ACME-U42 mailbox retired"));
        await world.Network.AddMxServerAsync("mx.busy.example", o => o.OnRcpt = _ => new SmtpServerReply(451, "4.7.650", "The mail server [127.0.0.1] has been temporarily rate limited due to IP reputation. (S775)"));
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");
        var classifier = BounceClassifier.WithOperatorRules(BounceRules.Parse("""{"rules": [{"category": "bad-mailbox", "code": "550", "text": "ACME-U42"}]}"""));
        using var engine = world.Network.CreateEngine(time: world.Time, classifier: classifier);
        var handler = new DomainDeliveryHandler(world.Queue, engine, "mta.loopback.test", tlsResults: world.TlsResults);

        var retired = await world.SubmitAsync("s@sender.example", ["bob@retired.example"]);
        var busy = await world.SubmitAsync("s@sender.example", ["carol@busy.example"]);
        await world.DrainAsync(handler);

        var retiredRecord = (await world.Queue.FindAsync(retired.Recipients[0].Id, CancellationToken.None))!;
        var busyRecord = (await world.Queue.FindAsync(busy.Recipients[0].Id, CancellationToken.None))!;
        Assert.Equal(RecipientState.Failed, retiredRecord.State);
        Assert.Equal("bad-mailbox", retiredRecord.LastCategory);
        Assert.Equal(RecipientState.Queued, busyRecord.State);
        Assert.Equal("throttled", busyRecord.LastCategory);

        // status --json and GET /api/messages/{id} print the same JSON.
        using var json = JsonDocument.Parse(StatusCommand.ToJson([retiredRecord, busyRecord]));
        Assert.Equal(["bad-mailbox", "throttled"], json.RootElement.EnumerateArray().Select(r => r.GetProperty("category").GetString()));

        // The DSN about bob says in words what happened, and names the category for bounce processors.
        var dsn = MimeMessage.Load(new MemoryStream(Assert.Single(senderMx.Messages).Data));
        var report = Assert.IsType<MultipartReport>(dsn.Body);
        Assert.Contains("The address does not exist", Assert.IsType<TextPart>(report[0]).Text, StringComparison.Ordinal);
        using var status = new MemoryStream();
        ((MimePart)report[1]).Content!.DecodeTo(status);
        Assert.Contains($"{DsnComposer.CategoryField}: bad-mailbox", Encoding.UTF8.GetString(status.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public void A_record_from_before_the_category_column_reads_its_category_from_its_stored_reply()
    {
        var attempted = DateTimeOffset.UnixEpoch;
        var old = new RecipientRecord { State = RecipientState.Failed, LastAttemptAt = attempted, LastCode = 550, LastEnhancedCode = "5.4.1", LastText = "Recipient address rejected: Access denied" };
        var never = new RecipientRecord { State = RecipientState.Queued };
        var stored = new RecipientRecord { State = RecipientState.Queued, LastAttemptAt = attempted, LastCode = 451, LastEnhancedCode = "4.4.1", LastText = "connection refused", LastCategory = "network" };

        Assert.Null(old.LastCategory);
        Assert.Equal("bad-mailbox", old.Category);
        Assert.Equal("none", never.Category);
        Assert.Equal("network", stored.Category);
        Assert.Equal("network", stored.ToStateEntity()[nameof(RecipientRecord.LastCategory)]);
    }
}
