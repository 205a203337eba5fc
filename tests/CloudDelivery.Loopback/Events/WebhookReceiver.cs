using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace CloudDelivery.Loopback.Events;

/// <summary>How a webhook receiver refuses a request it was told to refuse.</summary>
public enum WebhookRefusal
{
    /// <summary>500 Internal Server Error.</summary>
    ServerError,

    /// <summary>Reads the request and never answers.</summary>
    Stall,
}

/// <summary>
/// A webhook endpoint on loopback HTTPS: it refuses the first <see cref="RefuseFirst"/> requests (a 500 or a
/// stall), checks each signature with the verifier it was given (the tests pass WebhookSignature's), answers
/// 401 to a bad one and 200 otherwise, and records every event id it accepted.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly LoopbackHttpsReceiver receiver;
    private readonly Func<ReceivedRequest, bool> verify;
    private readonly List<ReceivedRequest> requests = [];
    private readonly List<string> acceptedIds = [];
    private int refused;

    /// <param name="address">The loopback address to listen on (port chosen by the system).</param>
    /// <param name="certificate">The server certificate, issued by the test PKI for the name tests dial.</param>
    /// <param name="verify">Whether a request's webhook-* headers sign its body.</param>
    public WebhookReceiver(IPAddress address, X509Certificate2 certificate, Func<ReceivedRequest, bool> verify)
    {
        this.verify = verify;
        receiver = new LoopbackHttpsReceiver(address, certificate, request => Task.FromResult(Answer(request)));
    }

    public IPEndPoint EndPoint => receiver.EndPoint;

    /// <summary>How many requests to refuse before accepting.</summary>
    public int RefuseFirst { get; set; }

    public WebhookRefusal Refusal { get; set; } = WebhookRefusal.ServerError;

    /// <summary>What an accepted request is answered with (tests swap in an endless body).</summary>
    public ReceiverReply AcceptReply { get; set; } = ReceiverReply.Ok;

    /// <summary>Every request received, refused or not, in order.</summary>
    public IReadOnlyList<ReceivedRequest> Requests
    {
        get
        {
            lock (requests)
            {
                return [.. requests];
            }
        }
    }

    /// <summary>The ids of the events in accepted, correctly signed requests (with repeats, if sent again).</summary>
    public IReadOnlyList<string> AcceptedEventIds
    {
        get
        {
            lock (requests)
            {
                return [.. acceptedIds];
            }
        }
    }

    public int BadSignatures { get; private set; }

    private ReceiverReply Answer(ReceivedRequest request)
    {
        lock (requests)
        {
            requests.Add(request);
            if (refused < RefuseFirst)
            {
                refused++;
                return Refusal == WebhookRefusal.Stall ? new ReceiverReply(200, Kind: ReplyKind.Stall) : new ReceiverReply(500, "refused by the test");
            }
            if (!verify(request))
            {
                BadSignatures++;
                return new ReceiverReply(401, "bad signature");
            }
            using var document = JsonDocument.Parse(request.Body);
            acceptedIds.AddRange(document.RootElement.EnumerateArray().Select(e => e.GetProperty("id").GetString()!));
            return AcceptReply;
        }
    }

    public ValueTask DisposeAsync() => receiver.DisposeAsync();
}
