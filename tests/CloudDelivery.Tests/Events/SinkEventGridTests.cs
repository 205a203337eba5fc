using CloudDelivery.Azure.Events;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// The Event Grid sink against a loopback topic that checks what Event Grid checks (CloudEvents batch
/// schema, media type, auth, the 1 MB limit): what it publishes is accepted, batches are cut by count and by
/// size, and a refusal is an <see cref="EventSinkException"/> carrying the topic's status.
/// </summary>
public class SinkEventGridTests
{
    private const string Host = "topic.westeurope-1.eventgrid.loopback.test";

    [Fact]
    public async Task A_batch_published_with_the_managed_identity_is_accepted_by_the_topic()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host);
        var sink = world.EventGrid(topic, Host);
        var events = SinkTestWorld.Events(3);

        await sink.SendAsync(events, CancellationToken.None);

        Assert.Empty(topic.Refusals);
        Assert.Equal(events.Select(e => e.Id), Assert.Single(topic.AcceptedBatches));
        Assert.NotEmpty(topic.BearerTokens);
        Assert.Contains("https://eventgrid.azure.net/.default", world.Credential.RequestedScopes);
    }

    [Fact]
    public async Task A_topic_key_is_sent_as_aeg_sas_key_and_a_wrong_key_is_a_401()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host, key: "the-right-key");

        await world.EventGrid(topic, Host, key: "the-right-key").SendAsync(SinkTestWorld.Events(1), CancellationToken.None);
        var refused = await Assert.ThrowsAsync<EventSinkException>(() => world.EventGrid(topic, Host, key: "a-wrong-key").SendAsync(SinkTestWorld.Events(1), CancellationToken.None));

        Assert.Single(topic.AcceptedBatches);
        Assert.Equal(401, refused.Status);
        Assert.Equal(EventGridSink.SinkName, refused.Sink);
    }

    [Fact]
    public async Task Two_hundred_and_fifty_events_go_as_three_requests_of_at_most_one_hundred_in_order()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host);
        var sink = world.EventGrid(topic, Host, maxBatchSize: 100);
        var events = SinkTestWorld.Events(250);

        await sink.SendAsync(events, CancellationToken.None);

        Assert.Equal([100, 100, 50], topic.AcceptedBatches.Select(b => b.Count));
        Assert.Equal(events.Select(e => e.Id), topic.AcceptedBatches.SelectMany(b => b));
    }

    [Fact]
    public async Task Large_events_are_split_so_that_no_request_exceeds_the_one_megabyte_limit()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host);
        var sink = world.EventGrid(topic, Host);
        // Three events of 400 KB: any two fit under 1 MB, all three do not.
        List<OutboxEvent> events = [.. Enumerable.Range(0, 3).Select(i => SinkTestWorld.Event($"big{i}", padding: 400_000))];

        await sink.SendAsync(events, CancellationToken.None);

        Assert.Empty(topic.Refusals);
        Assert.Equal([2, 1], topic.AcceptedBatches.Select(b => b.Count));
    }

    [Fact]
    public async Task An_event_over_the_limit_on_its_own_fails_with_413_without_a_request()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host);
        var sink = world.EventGrid(topic, Host);

        var refused = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync([SinkTestWorld.Event("huge", padding: 1_100_000)], CancellationToken.None));

        Assert.Equal(413, refused.Status);
        Assert.Empty(topic.AcceptedBatches);
        Assert.Empty(topic.Refusals);
    }

    [Theory]
    [InlineData(401)]
    [InlineData(500)]
    public async Task A_refusing_topic_is_an_event_sink_exception_with_its_status(int status)
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host);
        // Enough refusals to outlast the SDK's one retry of a 500.
        topic.Refuse(count: 5, status);
        var sink = world.EventGrid(topic, Host);

        var refused = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync(SinkTestWorld.Events(2), CancellationToken.None));

        Assert.Equal(status, refused.Status);
        Assert.Empty(topic.AcceptedBatches);
    }

    [Fact]
    public async Task An_event_the_topic_finds_invalid_is_refused_with_400()
    {
        await using var world = await SinkTestWorld.StartAsync();
        var topic = world.StartTopic(Host);
        var sink = world.EventGrid(topic, Host);
        var withoutSource = new OutboxEvent("x1", "shop.example", """{"specversion":"1.0","id":"x1","type":"CloudDelivery.Recipient.Delivered"}"""u8.ToArray());

        var refused = await Assert.ThrowsAsync<EventSinkException>(() => sink.SendAsync([withoutSource], CancellationToken.None));

        Assert.Equal(400, refused.Status);
        Assert.Contains(topic.Refusals, r => r.Contains("source is required", StringComparison.Ordinal));
    }
}
