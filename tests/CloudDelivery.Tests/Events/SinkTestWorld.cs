using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Events;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Loopback.Events;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Storage;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// Loopback DNS and test PKI for the sink tests: receivers get a name in the zone and a certificate for it
/// from the test CA, and sinks resolve through the loopback resolver and trust that CA, as an operator's
/// Delivery:Resolver and Delivery:TrustCaFile would make them.
/// </summary>
internal sealed class SinkTestWorld : IAsyncDisposable
{
    private readonly LoopbackWorld world;
    private readonly List<IAsyncDisposable> receivers = [];
    private readonly List<IDisposable> sinks = [];

    private SinkTestWorld(LoopbackWorld world)
    {
        this.world = world;
        Resolver = new DnsResolver(new DnsResolverOptions { Server = world.Dns.EndPoint, QueryTimeout = TimeSpan.FromSeconds(2), Retries = 0 });
    }

    public DnsResolver Resolver { get; }

    public UnsignedTokenCredential Credential { get; } = new();

    public static async Task<SinkTestWorld> StartAsync() => new(await LoopbackWorld.StartAsync());

    public EventGridTopicStandIn StartTopic(string host, string? key = null)
    {
        var topic = new EventGridTopicStandIn(Publish(host), world.Pki.Issue([host]), key);
        receivers.Add(topic);
        return topic;
    }

    public WebhookReceiver StartWebhook(string host, string secret)
    {
        var signature = new WebhookSignature(secret);
        var receiver = new WebhookReceiver(Publish(host), world.Pki.Issue([host]), request => Verifies(signature, request));
        receivers.Add(receiver);
        return receiver;
    }

    public EventGridSink EventGrid(EventGridTopicStandIn topic, string host, string? key = null, int timeoutSeconds = 10, int maxBatchSize = 100)
    {
        var sink = new EventGridSink(
            new EventGridSinkOptions { Endpoint = $"https://{host}:{topic.EndPoint.Port}/api/events", Key = key, TimeoutSeconds = timeoutSeconds, MaxBatchSize = maxBatchSize },
            Credential, Resolver, [world.Pki.Root]);
        sinks.Add(sink);
        return sink;
    }

    public WebhookSink Webhook(WebhookReceiver receiver, string host, string secret, int timeoutSeconds = 10, string? senderDomains = null, AddressPolicy? policy = null, TimeProvider? time = null)
    {
        var sink = new WebhookSink(
            new WebhookSinkOptions { Url = $"https://{host}:{receiver.EndPoint.Port}/hooks/mail", Secret = secret, TimeoutSeconds = timeoutSeconds, SenderDomains = senderDomains },
            Resolver, policy ?? AddressPolicy.AllowPrivate, [world.Pki.Root], time);
        sinks.Add(sink);
        return sink;
    }

    /// <summary>A CloudEvents 1.0 structured event as the outbox holds it; <paramref name="padding"/> bytes of data make it large.</summary>
    public static OutboxEvent Event(string id, string senderDomain = "shop.example", int padding = 0)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["specversion"] = "1.0",
            ["id"] = id,
            ["source"] = "/clouddelivery/mta.loopback.test",
            ["type"] = "CloudDelivery.Recipient.Delivered",
            ["subject"] = $"recipient/{id}",
            ["time"] = "2026-12-02T03:00:00Z",
            ["datacontenttype"] = "application/json",
            ["data"] = new Dictionary<string, object> { ["messageId"] = "m-" + id, ["padding"] = new string('x', padding) },
        });
        return new OutboxEvent(id, senderDomain, json);
    }

    public static List<OutboxEvent> Events(int count, string prefix = "e") =>
        [.. Enumerable.Range(0, count).Select(i => Event($"{prefix}{i:D4}"))];

    private static bool Verifies(WebhookSignature signature, ReceivedRequest request) =>
        request.Header(WebhookSignature.IdHeader) is { } id
        && request.Header(WebhookSignature.TimestampHeader) is { } timestamp
        && request.Header(WebhookSignature.SignatureHeader) is { } signed
        && signature.Verify(id, timestamp, signed, request.Body, DateTimeOffset.UtcNow);

    private System.Net.IPAddress Publish(string host)
    {
        var address = LoopbackWorld.NewAddress();
        world.Zone.AddA(host, address.ToString());
        return address;
    }

    public static string Text(ReceivedRequest request) => Encoding.UTF8.GetString(request.Body);

    public async ValueTask DisposeAsync()
    {
        foreach (var sink in sinks)
        {
            sink.Dispose();
        }
        foreach (var receiver in receivers)
        {
            await receiver.DisposeAsync();
        }
        await world.DisposeAsync();
    }
}
