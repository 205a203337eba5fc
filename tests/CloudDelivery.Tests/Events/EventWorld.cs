using System.Text.Json;
using Azure.Data.Tables;
using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Tests.Queue;
using Microsoft.Extensions.Time.Testing;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// A <see cref="QueueWorld"/> whose queue writes events to the outbox, with a dispatcher over the given
/// sinks. The events' clock is a <see cref="FakeTimeProvider"/> the test moves (backoff, retention, adoption).
/// </summary>
public sealed class EventWorld : IAsyncDisposable
{
    private readonly CancellationTokenSource stop = new();
    private Task? running;

    private EventWorld(QueueWorld world, EventOptions options, IEventSink[] sinks, bool handOver)
    {
        World = world;
        Options = options;
        Dispatcher = new EventDispatcher(world.Storage, sinks, options, EventTime);
        Outbox = new EventOutbox(new RecipientEvents(options, "mta.loopback.test"), EventTime, handOver ? Dispatcher : null);
        Queue = new OutboundQueue(world.Storage, world.Queue.Options, world.Time) { Events = Outbox };
        Handler = new DomainDeliveryHandler(Queue, world.Engine, "mta.loopback.test");
    }

    public QueueWorld World { get; }

    public EventOptions Options { get; }

    public FakeTimeProvider EventTime { get; } = new(DateTimeOffset.UtcNow);

    public EventDispatcher Dispatcher { get; }

    public EventOutbox Outbox { get; }

    public OutboundQueue Queue { get; }

    public DomainDeliveryHandler Handler { get; }

    /// <param name="azurite">The test run's Azurite.</param>
    /// <param name="sinks">The dispatcher's sinks.</param>
    /// <param name="options">Event settings; no delete delay by default.</param>
    /// <param name="handOver">False: writers do not hand events to the dispatcher (as after a crash between write and publish).</param>
    public static async Task<EventWorld> StartAsync(AzuriteFixture azurite, IEventSink[] sinks, EventOptions? options = null, bool handOver = true) =>
        new(await QueueWorld.StartAsync(azurite), options ?? new EventOptions { DeleteDelay = TimeSpan.Zero }, sinks, handOver);

    public void StartDispatcher() => running = Dispatcher.RunAsync(stop.Token);

    public Task<SubmissionResult> SubmitAsync(string from, string[] to, IReadOnlyDictionary<string, string>? tags = null) =>
        Queue.SubmitAsync(new SubmissionRequest
        {
            Sender = from,
            Recipients = to,
            Message = new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"From: <{from}>\r\nTo: <{to[0]}>\r\nSubject: events\r\n\r\nHello.\r\n")),
            Tags = tags,
        }, CancellationToken.None);

    public Task<List<DomainRunResult>> DrainAsync() => World.DrainAsync(Handler);

    /// <summary>The outbox rows now in the recipients table.</summary>
    public async Task<List<OutboxEntry>> OutboxAsync()
    {
        var list = new List<OutboxEntry>();
        await foreach (var entity in World.Storage.Recipients.QueryAsync<TableEntity>(EventOutbox.RowFilter))
        {
            list.Add(EventOutbox.FromEntity(entity)!);
        }
        return list;
    }

    /// <summary>Waits (on the wall clock, generously) until <paramref name="condition"/> holds; fails the test otherwise.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, Action? between = null)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting for {what}");
            }
            between?.Invoke();
            await Task.Delay(20);
        }
    }

    public static Task EventuallyAsync(Func<bool> condition, string what, Action? between = null) => EventuallyAsync(() => Task.FromResult(condition()), what, between);

    public static JsonElement Data(JsonElement cloudEvent) => cloudEvent.GetProperty("data");

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        if (running is not null)
        {
            await running;
        }
        stop.Dispose();
        await World.DisposeAsync();
    }
}
