using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Queue;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.MtaSts;

namespace CloudDelivery.Tests.Queue;

/// <summary>A loopback world plus the durable queue on Azurite, with a clock the test moves.</summary>
public sealed class QueueWorld : IAsyncDisposable
{
    private QueueWorld(LoopbackWorld network, OutboundStorage storage, ManualTimeProvider time, Action<OutboundQueueOptions>? configure)
    {
        Network = network;
        Storage = storage;
        Time = time;
        // No wake-up window: the tests drain the queue right after submitting, on a clock they move by hand.
        // No retry jitter: tests read exact next-attempt times (QueueRulesTests cover the jitter).
        var options = new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero, Retry = new RetrySchedule { JitterSeconds = 0 } };
        configure?.Invoke(options);
        Queue = new OutboundQueue(storage, options, time);
        Engine = network.CreateEngine(time: time);
        TlsResults = new TlsRptResultStore(storage.TlsReports, time);
        Handler = new DomainDeliveryHandler(Queue, Engine, "mta.loopback.test", tlsResults: TlsResults);
    }

    public LoopbackWorld Network { get; }

    public OutboundStorage Storage { get; }

    public ManualTimeProvider Time { get; }

    public OutboundQueue Queue { get; }

    public DeliveryEngine Engine { get; }

    public DomainDeliveryHandler Handler { get; }

    /// <summary>Where the handler records TLSRPT results.</summary>
    public TlsRptResultStore TlsResults { get; }

    /// <param name="azurite">The storage emulator the queue lives in.</param>
    /// <param name="configure">Changes to the queue's options (made before the queue is built: some, like Shards, are read once).</param>
    public static async Task<QueueWorld> StartAsync(AzuriteFixture azurite, Action<OutboundQueueOptions>? configure = null)
    {
        var network = await LoopbackWorld.StartAsync();
        return new QueueWorld(network, await azurite.NewStorageAsync(), new ManualTimeProvider(DateTimeOffset.UtcNow), configure);
    }

    public Task<SubmissionResult> SubmitAsync(string from, string[] to, string? body = null, bool requireTls = false) =>
        Queue.SubmitAsync(new SubmissionRequest
        {
            Sender = from,
            Recipients = to,
            Message = new MemoryStream(Encoding.UTF8.GetBytes(body ?? $"From: <{from}>\r\nTo: <{to[0]}>\r\nSubject: queued\r\nMessage-ID: <{Guid.NewGuid():N}@sender.example>\r\n\r\nHello.\r\n")),
            RequireTls = requireTls,
        }, CancellationToken.None);

    /// <summary>Takes the visible wake-ups off the queue and handles each, as the queue trigger does (with <paramref name="handler"/> instead of <see cref="Handler"/> when given).</summary>
    public async Task<List<DomainRunResult>> DrainAsync(DomainDeliveryHandler? handler = null)
    {
        handler ??= Handler;
        var results = new List<DomainRunResult>();
        while (true)
        {
            var batch = (await Storage.WakeUps.ReceiveMessagesAsync(32)).Value;
            if (batch.Length == 0)
            {
                return results;
            }
            foreach (var message in batch)
            {
                results.Add(await handler.HandleAsync(WakeUp.Parse(message.Body.ToString()), CancellationToken.None));
                await Storage.WakeUps.DeleteMessageAsync(message.MessageId, message.PopReceipt);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Engine.Dispose();
        await Network.DisposeAsync();
    }
}
