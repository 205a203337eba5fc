using CloudDelivery.Azure.Queue;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// A delivery through the queue, the outbox and the dispatcher to a real webhook sink over loopback HTTPS:
/// the receiver refuses the first attempts, mail is not held up, and every event arrives signed, at least once.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class SinkEndToEndTests(AzuriteFixture azurite)
{
    private const string Host = "hooks.e2e.loopback.test";
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    [Fact]
    public async Task A_delivery_reaches_a_webhook_that_refused_the_first_attempts_with_each_event_at_least_once()
    {
        await using var sinks = await SinkTestWorld.StartAsync();
        var receiver = sinks.StartWebhook(Host, Secret);
        receiver.RefuseFirst = 2;
        var webhook = sinks.Webhook(receiver, Host, Secret);
        await using var world = await EventWorld.StartAsync(azurite, [webhook]);
        world.World.Network.Zone.AddMx("hooked.example", 10, "mx.hooked.example");
        var mx = await world.World.Network.AddMxServerAsync("mx.hooked.example");
        world.StartDispatcher();

        var submitted = await world.SubmitAsync("app@sender.example", ["a@hooked.example", "b@hooked.example"]);
        await world.DrainAsync();

        Assert.Single(mx.Messages);
        foreach (var recipient in submitted.Recipients)
        {
            Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(recipient.Id, CancellationToken.None))!.State);
        }
        var expected = submitted.Recipients.SelectMany(r => new[] { $"{r.Id}:0000", $"{r.Id}:0001" }).ToHashSet();
        // The dispatcher's backoff runs on the events' fake clock: move it until the receiver has them all.
        await EventWorld.EventuallyAsync(() => expected.IsSubsetOf(receiver.AcceptedEventIds), "every event at the webhook", () => world.EventTime.Advance(TimeSpan.FromSeconds(1)));
        Assert.True(receiver.Requests.Count >= 3, $"{receiver.Requests.Count} requests");
        Assert.Equal(0, receiver.BadSignatures);
        await EventWorld.EventuallyAsync(async () => (await world.OutboxAsync()).Count == 0, "the outbox to empty");
    }
}
