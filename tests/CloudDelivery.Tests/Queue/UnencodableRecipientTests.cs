using System.Text;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// Defence in depth behind the address grammar: a record whose address no longer parses (stored by an older
/// version, or by hand) fails alone, permanently, with a DSN; the rest of its message, its domain and its
/// run go on.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UnencodableRecipientTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_stored_recipient_that_cannot_be_encoded_fails_alone_with_5_1_3_and_a_dsn()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("victim.example", 10, "mx.victim.example").AddMx("sender.example", 10, "mx.sender.example");
        var mx = await world.Network.AddMxServerAsync("mx.victim.example");
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");
        var first = await world.SubmitAsync("sender@sender.example", ["bad@victim.example", "ok@victim.example"]);
        var second = await world.SubmitAsync("sender@sender.example", ["later@victim.example"]);
        // As an older version stored it: it split at the last @ and accepted this.
        var badId = first.Recipients.Single(r => r.Recipient == "bad@victim.example").Id;
        var (partition, row) = (badId[..badId.IndexOf('/', StringComparison.Ordinal)], badId[(badId.IndexOf('/', StringComparison.Ordinal) + 1)..]);
        await world.Storage.Recipients.UpdateEntityAsync(new TableEntity(partition, row) { ["Recipient"] = "a@b@victim.example" }, ETag.All, TableUpdateMode.Merge);

        await world.DrainAsync();

        Assert.Equal(2, mx.Messages.Count);
        Assert.Contains(mx.Messages, m => m.Recipients.SequenceEqual(["ok@victim.example"]));
        Assert.Contains(mx.Messages, m => m.Recipients.SequenceEqual(["later@victim.example"]));
        var bad = (await world.Queue.FindAsync(badId, CancellationToken.None))!;
        Assert.Equal(RecipientState.Failed, bad.State);
        Assert.Equal("5.1.3", bad.LastEnhancedCode);
        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(second.Recipients[0].Id, CancellationToken.None))!.State);
        var dsn = Encoding.UTF8.GetString(Assert.Single(senderMx.Messages).Data);
        Assert.Contains("a@b@victim.example", dsn, StringComparison.Ordinal);
        Assert.Contains("Status: 5.1.3", dsn, StringComparison.Ordinal);
    }
}
