using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// POSTs batches of events to one HTTPS webhook as application/cloudevents-batch+json, signed per Standard
/// Webhooks (<see cref="WebhookSignature"/>). A 2xx is success; any other status, a timeout or a connection
/// failure is an <see cref="EventSinkException"/> and the dispatcher retries. The receiver is resolved
/// through the service's resolver and dialled under the delivery address policy (loopback only when
/// Delivery:AllowPrivateAddresses is on); the whole request has one deadline, and at most
/// <see cref="MaxResponseBodyBytes"/> of the response body is read, then discarded.
/// </summary>
public sealed class WebhookSink : IEventSink, IDisposable
{
    /// <summary>Response bytes read (so a short body lets the connection be reused); the rest is never read.</summary>
    internal const int MaxResponseBodyBytes = 4096;

    private readonly Uri url;
    private readonly WebhookSignature signature;
    private readonly HashSet<string> senderDomains;
    private readonly TimeSpan timeout;
    private readonly TimeProvider time;
    private readonly SocketsHttpHandler handler;
    private readonly HttpClient client;

    public WebhookSink(WebhookSinkOptions options, DnsResolver resolver, AddressPolicy addressPolicy, X509Certificate2Collection? extraTrustRoots = null, TimeProvider? time = null)
    {
        url = new Uri(options.Url!.Trim(), UriKind.Absolute);
        signature = new WebhookSignature(options.Secret!);
        senderDomains = new HashSet<string>(options.SenderDomainList(), StringComparer.OrdinalIgnoreCase);
        timeout = TimeSpan.FromSeconds(options.TimeoutSeconds);
        this.time = time ?? TimeProvider.System;
        Name = options.SinkName;
        MaxBatchSize = options.MaxBatchSize;
        handler = EventSinkHttp.CreateHandler(url.IdnHost, resolver, addressPolicy, extraTrustRoots, this.time);
        client = new HttpClient(handler, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public string Name { get; }

    public int MaxBatchSize { get; }

    /// <summary>Events of the configured sender domains, or all events when none are configured.</summary>
    public bool Wants(OutboxEvent outboxEvent) =>
        senderDomains.Count == 0 || senderDomains.Contains(outboxEvent.SenderDomain.TrimEnd('.'));

    public async Task SendAsync(IReadOnlyList<OutboxEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var run in CloudEventBatch.Split(batch, MaxBatchSize, int.MaxValue))
        {
            await PostAsync(run, cancellationToken);
        }
    }

    /// <summary>
    /// The webhook-id of a batch: derived from its events' ids, so a retry of the same batch carries the
    /// same id (Standard Webhooks: the id is the idempotency key of a message and is kept across retries).
    /// </summary>
    internal static string BatchId(IReadOnlyList<OutboxEvent> run)
    {
        var ids = Encoding.UTF8.GetBytes(string.Join('\n', run.Select(e => e.Id)));
        return "batch_" + Convert.ToHexStringLower(SHA256.HashData(ids))[..32];
    }

    private async Task PostAsync(IReadOnlyList<OutboxEvent> run, CancellationToken cancellationToken)
    {
        var body = CloudEventBatch.Encode(run);
        var id = BatchId(run);
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(CloudEventBatch.MediaType) { CharSet = "utf-8" };
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        request.Headers.Add(WebhookSignature.IdHeader, id);
        request.Headers.Add(WebhookSignature.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add(WebhookSignature.SignatureHeader, signature.Sign(id, timestamp, body));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            await DiscardShortBodyAsync(response, deadline.Token);
            if (!response.IsSuccessStatusCode)
            {
                throw new EventSinkException(Name, (int)response.StatusCode, $"{url.Host} answered {(int)response.StatusCode} {response.ReasonPhrase}");
            }
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EventSinkException(Name, 0, $"no answer from {url.Host} within {timeout.TotalSeconds:0} s", e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            throw new EventSinkException(Name, 0, $"{url.Host}: {EventSinkHttp.Describe(e)}", e);
        }
    }

    /// <summary>
    /// Reads a short body (at most <see cref="MaxResponseBodyBytes"/>, by Content-Length) so the connection can
    /// be reused; a longer or unsized body is never read, and disposing the response drops the connection. The
    /// body says nothing the status does not, so a receiver that stalls in it changes nothing.
    /// </summary>
    private static async Task DiscardShortBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength is not (>= 0 and <= MaxResponseBodyBytes))
        {
            return;
        }
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var buffer = new byte[MaxResponseBodyBytes];
            var total = 0;
            int read;
            while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0)
            {
                total += read;
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
        {
            // The status has been given; a body that breaks off or outlasts the deadline changes nothing.
        }
    }

    public void Dispose()
    {
        client.Dispose();
        handler.Dispose();
    }
}
