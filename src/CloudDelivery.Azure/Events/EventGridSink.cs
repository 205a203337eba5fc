using System.Security.Cryptography.X509Certificates;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using Azure.Messaging.EventGrid;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// Publishes events to an Azure Event Grid topic whose input schema is CloudEvents 1.0: each batch is one
/// POST of the already-encoded events as a JSON array (CloudEvents batch mode), authenticated by the app's
/// managed identity (Entra ID, the "EventGrid Data Sender" role) or, in development, a topic key. A request
/// stays under Event Grid's 1 MB limit and takes at most <see cref="MaxBatchSize"/> events; its deadline
/// covers the SDK's single retry, since the dispatcher retries a failed batch with its own backoff.
/// </summary>
public sealed class EventGridSink : IEventSink, IDisposable
{
    /// <summary>The sink's name in logs, metrics and parked events.</summary>
    public const string SinkName = "eventgrid";

    /// <summary>
    /// Event Grid refuses a request over 1 MB (https://learn.microsoft.com/azure/event-grid/quotas-limits);
    /// the margin leaves room for the SDK's headers counted by some front ends.
    /// </summary>
    internal const int MaxRequestBytes = 1_000_000;

    private readonly EventGridPublisherClient client;
    private readonly SocketsHttpHandler handler;
    private readonly TimeSpan timeout;

    /// <param name="options">The topic settings; <see cref="EventGridSinkOptions.Key"/> empty means <paramref name="credential"/>.</param>
    /// <param name="credential">The app's identity (<see cref="Hosting.AzureCredentials"/>); unused with a key.</param>
    /// <param name="resolver">The service's one resolver, which looks the topic's host up.</param>
    /// <param name="extraTrustRoots">Roots trusted beside the system's (Delivery:TrustCaFile).</param>
    /// <param name="time">The clock certificates are checked against.</param>
    public EventGridSink(EventGridSinkOptions options, TokenCredential credential, DnsResolver resolver, X509Certificate2Collection? extraTrustRoots = null, TimeProvider? time = null)
    {
        var endpoint = options.EndpointUri;
        timeout = TimeSpan.FromSeconds(options.TimeoutSeconds);
        MaxBatchSize = options.MaxBatchSize;
        // The topic is the operator's own resource, possibly behind a private endpoint (a private address):
        // the address policy for strangers' DNS answers does not apply, as for a smarthost.
        handler = EventSinkHttp.CreateHandler(endpoint.IdnHost, resolver, AddressPolicy.Unrestricted, extraTrustRoots, time ?? TimeProvider.System);
        var clientOptions = new EventGridPublisherClientOptions
        {
            Transport = new HttpClientTransport(handler),
            Retry = { MaxRetries = 1, Delay = TimeSpan.FromSeconds(1), MaxDelay = TimeSpan.FromSeconds(2), NetworkTimeout = timeout },
        };
        client = string.IsNullOrWhiteSpace(options.Key)
            ? new EventGridPublisherClient(endpoint, credential, clientOptions)
            : new EventGridPublisherClient(endpoint, new AzureKeyCredential(options.Key.Trim()), clientOptions);
    }

    public string Name => SinkName;

    public int MaxBatchSize { get; }

    /// <summary>A topic takes every event; subscriptions on it filter.</summary>
    public bool Wants(OutboxEvent outboxEvent) => true;

    public async Task SendAsync(IReadOnlyList<OutboxEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var run in CloudEventBatch.Split(batch, MaxBatchSize, MaxRequestBytes))
        {
            await PublishAsync(run, cancellationToken);
        }
    }

    private async Task PublishAsync(IReadOnlyList<OutboxEvent> run, CancellationToken cancellationToken)
    {
        var body = CloudEventBatch.Encode(run);
        if (body.Length > MaxRequestBytes)
        {
            // Event Grid would answer 413 for it every time; say so without the round trip.
            throw new EventSinkException(SinkName, 413, $"event {run[0].Id} is {body.Length} bytes, over Event Grid's {MaxRequestBytes}-byte request limit");
        }
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await client.SendEncodedCloudEventsAsync(body, deadline.Token);
        }
        catch (RequestFailedException e)
        {
            throw new EventSinkException(SinkName, e.Status, e.Status == 0 ? EventSinkHttp.Describe(e) : $"topic answered {e.Status} {e.ErrorCode}", e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EventSinkException(SinkName, 0, $"no answer within {timeout.TotalSeconds:0} s", e);
        }
        catch (AggregateException e)
        {
            // The SDK's retry gives up with every attempt's failure; the last one is the status that counts.
            var status = e.InnerExceptions.OfType<RequestFailedException>().LastOrDefault()?.Status ?? 0;
            throw new EventSinkException(SinkName, status, EventSinkHttp.Describe(e.InnerExceptions[^1]), e);
        }
        catch (Exception e) when (e is AuthenticationFailedException or CredentialUnavailableException)
        {
            throw new EventSinkException(SinkName, 0, $"no token for the topic: {e.Message}", e);
        }
    }

    public void Dispose() => handler.Dispose();
}
