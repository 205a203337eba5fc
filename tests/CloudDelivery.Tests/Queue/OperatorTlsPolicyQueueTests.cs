using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Tls;

namespace CloudDelivery.Tests.Queue;

/// <summary>Through the durable queue: what the sender reads when the operator's TLS policy holds a message back.</summary>
[Collection(AzuriteCollection.Name)]
public class OperatorTlsPolicyQueueTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_message_held_back_by_the_operators_policy_is_retried_and_its_status_and_dsns_name_the_policy()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("partner.example", 10, "mx.partner.example").AddMx("sender.example", 10, "mx.sender.example");
        var partnerMx = await world.Network.AddMxServerAsync("mx.partner.example", o => o.AdvertiseStartTls = false);
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");
        using var engine = world.Network.CreateEngine(time: world.Time, tlsPolicies: OperatorTlsPolicies.ParseInline("partner.example encrypt", "test").Policies);
        var handler = new DomainDeliveryHandler(world.Queue, engine, "mta.loopback.test");
        var submitted = await world.SubmitAsync("sender@sender.example", ["r@partner.example"]);
        const string expected = "TLS required by this service's policy for partner.example (encrypt): mx.partner.example did not offer STARTTLS";

        await world.DrainAsync(handler);

        var record = await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None);
        // Temporary: queued again, with the reason in status.
        Assert.Equal(RecipientState.Queued, record!.State);
        Assert.Equal(expected, record.LastText);
        Assert.Equal("4.7.10", record.LastEnhancedCode);

        for (var attempt = 1; attempt < 8; attempt++)
        {
            world.Time.Advance(TimeSpan.FromDays(1));
            await world.Queue.WakeAsync("partner.example", TimeSpan.Zero, CancellationToken.None);
            await world.DrainAsync(handler);
        }

        record = await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None);
        Assert.Equal(RecipientState.Expired, record!.State);
        Assert.Empty(partnerMx.Messages);
        var dsns = senderMx.Messages.Select(m => Encoding.UTF8.GetString(m.Data)).ToArray();
        Assert.Equal(2, dsns.Length);
        Assert.All(dsns, dsn => Assert.Contains($"Diagnostic-Code: smtp; 451 4.7.10 {expected}", Unfold(dsn), StringComparison.Ordinal));
    }

    /// <summary>Header folding (RFC 5322 §2.2.3) may break the long Diagnostic-Code line.</summary>
    private static string Unfold(string text) => text.Replace("\r\n ", " ", StringComparison.Ordinal).Replace("\r\n\t", " ", StringComparison.Ordinal);
}
