using System.Diagnostics;
using CloudDelivery.Azure.Events;
using CloudDelivery.Dialing;
using CloudDelivery.Loopback.Events;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// The webhook sink against a loopback receiver that verifies signatures with <see cref="WebhookSignature"/>:
/// what it sends verifies, it routes by sender domain, a refusal or a stall is an
/// <see cref="EventSinkException"/> within the deadline and the retry gets through, and a hostile response
/// costs no more than its status.
/// </summary>
public class SinkWebhookTests
{
    private const string Host = "hooks.shop.loopback.test";
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    [Fact]
    public async Task A_batch_arrives_as_a_signed_cloudevents_batch_the_receiver_verifies()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        var sink = world.Webhook(receiver, Host, Secret);
        var events = SinkTestWorld.Events(3);

        await sink.SendAsync(events, CancellationToken.None);

        var request = Assert.Single(receiver.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/hooks/mail", request.Path);
        Assert.Equal("application/cloudevents-batch+json; charset=utf-8", request.Header("content-type"));
        Assert.StartsWith("v1,", request.Header(WebhookSignature.SignatureHeader), StringComparison.Ordinal);
        Assert.Equal(0, receiver.BadSignatures);
        Assert.Equal(events.Select(e => e.Id), receiver.AcceptedEventIds);
        Assert.Equal($"webhook:{Host}", sink.Name);
    }

    [Fact]
    public async Task A_receiver_with_another_secret_refuses_the_signature_and_the_sink_reports_its_401()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, "the receiver's secret");
        var sink = world.Webhook(receiver, Host, "another secret");

        var refused = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(SinkTestWorld.Events(1), CancellationToken.None));

        Assert.Equal(401, refused.Status);
        Assert.Equal(1, receiver.BadSignatures);
        Assert.Empty(receiver.AcceptedEventIds);
    }

    [Fact]
    public async Task A_webhook_for_some_sender_domains_wants_only_their_events()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        var some = world.Webhook(receiver, Host, Secret, senderDomains: "shop.example, News.Example.");
        var all = world.Webhook(receiver, Host, Secret);

        Assert.True(some.Wants(SinkTestWorld.Event("1", senderDomain: "shop.example")));
        Assert.True(some.Wants(SinkTestWorld.Event("2", senderDomain: "NEWS.example")));
        Assert.False(some.Wants(SinkTestWorld.Event("3", senderDomain: "other.example")));
        Assert.False(some.Wants(SinkTestWorld.Event("4", senderDomain: string.Empty)));
        Assert.True(all.Wants(SinkTestWorld.Event("5", senderDomain: "other.example")));
        Assert.True(all.Wants(SinkTestWorld.Event("6", senderDomain: string.Empty)));
    }

    [Fact]
    public async Task A_receiver_that_refuses_the_first_attempts_gets_every_event_on_a_retry_with_the_same_webhook_id()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        receiver.RefuseFirst = 2;
        var sink = world.Webhook(receiver, Host, Secret);
        var events = SinkTestWorld.Events(5);

        var first = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(events, CancellationToken.None));
        var second = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(events, CancellationToken.None));
        await sink.SendAsync(events, CancellationToken.None);

        Assert.Equal(500, first.Status);
        Assert.Equal(500, second.Status);
        Assert.Equal(events.Select(e => e.Id), receiver.AcceptedEventIds);
        Assert.Single(receiver.Requests.Select(r => r.Header(WebhookSignature.IdHeader)).Distinct());
    }

    [Fact]
    public async Task A_stalled_receiver_fails_within_the_deadline_and_the_next_attempt_gets_through()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        receiver.RefuseFirst = 1;
        receiver.Refusal = WebhookRefusal.Stall;
        var sink = world.Webhook(receiver, Host, Secret, timeoutSeconds: 2);
        var clock = Stopwatch.StartNew();

        var stalled = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(SinkTestWorld.Events(1), CancellationToken.None));

        // A generous bound: the point is that the 2 s deadline ends the wait, not how fast.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
        Assert.Equal(0, stalled.Status);
        Assert.Contains("within 2 s", stalled.Message, StringComparison.Ordinal);
        await sink.SendAsync(SinkTestWorld.Events(1), CancellationToken.None);
        Assert.Single(receiver.AcceptedEventIds);
    }

    [Theory]
    [InlineData(200)]
    [InlineData(500)]
    public async Task A_response_body_that_never_ends_is_not_read_and_the_status_decides(int status)
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        receiver.AcceptReply = new ReceiverReply(status, Kind: ReplyKind.EndlessBody);
        // Reading the endless body would run into this deadline and turn a 200 into a failure.
        var sink = world.Webhook(receiver, Host, Secret, timeoutSeconds: 20);

        var failure = await Record.ExceptionAsync(() => sink.SendAsync(SinkTestWorld.Events(1), CancellationToken.None));

        if (status == 200)
        {
            Assert.Null(failure);
        }
        else
        {
            Assert.Equal(500, Assert.IsType<EventSinkException>(failure).Status);
        }
    }

    [Fact]
    public async Task A_loopback_receiver_is_not_dialled_under_the_public_only_address_policy()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        var sink = world.Webhook(receiver, Host, Secret, policy: AddressPolicy.PublicOnly);

        var refused = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(SinkTestWorld.Events(1), CancellationToken.None));

        Assert.Equal(0, refused.Status);
        Assert.Contains("refusing to dial", refused.Message, StringComparison.Ordinal);
        Assert.Empty(receiver.Requests);
    }

    [Fact]
    public async Task A_host_that_does_not_resolve_is_a_failure_without_status()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var receiver = world.StartWebhook(Host, Secret);
        using var sink = new WebhookSink(
            new WebhookSinkOptions { Url = $"https://nowhere.loopback.test:{receiver.EndPoint.Port}/", Secret = Secret },
            world.Resolver, AddressPolicy.AllowPrivate);

        var failed = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(SinkTestWorld.Events(1), CancellationToken.None));

        Assert.Equal(0, failed.Status);
        Assert.Contains("does not exist", failed.Message, StringComparison.Ordinal);
    }
}
