using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace CloudDelivery.Loopback.Events;

/// <summary>
/// An Event Grid topic (input schema CloudEvents 1.0) on loopback HTTPS, checking what the service checks
/// before it accepts a publish: POST to /api/events, the CloudEvents batch media type, an Entra ID bearer
/// token or the topic key, a body of at most 1 MB that is a JSON array of events each with specversion
/// "1.0", id, source and type. It answers 200 with an empty body, or 400/401/413 with a reason, and records
/// each accepted batch's event ids.
/// </summary>
public sealed class EventGridTopicStandIn : IAsyncDisposable
{
    /// <summary>Event Grid's request limit, 1 MB (https://learn.microsoft.com/azure/event-grid/quotas-limits).</summary>
    public const int MaxRequestBytes = 1024 * 1024;

    public const string BatchContentType = "application/cloudevents-batch+json; charset=utf-8";

    private readonly LoopbackHttpsReceiver receiver;
    private readonly List<IReadOnlyList<string>> accepted = [];
    private readonly List<string> refusals = [];
    private int forcedRemaining;
    private int forcedStatus;

    /// <param name="address">The loopback address to listen on (port chosen by the system).</param>
    /// <param name="certificate">The server certificate, issued by the test PKI for the name tests dial.</param>
    /// <param name="key">The topic key to require in aeg-sas-key; null requires a bearer token instead.</param>
    public EventGridTopicStandIn(IPAddress address, X509Certificate2 certificate, string? key = null)
    {
        Key = key;
        receiver = new LoopbackHttpsReceiver(address, certificate, request => Task.FromResult(Answer(request)));
    }

    public IPEndPoint EndPoint => receiver.EndPoint;

    public string? Key { get; }

    /// <summary>The bearer tokens presented, in order.</summary>
    public List<string> BearerTokens { get; } = [];

    /// <summary>The event ids of each accepted request, in order.</summary>
    public IReadOnlyList<IReadOnlyList<string>> AcceptedBatches
    {
        get
        {
            lock (accepted)
            {
                return [.. accepted];
            }
        }
    }

    /// <summary>Why requests were refused, in order.</summary>
    public IReadOnlyList<string> Refusals
    {
        get
        {
            lock (accepted)
            {
                return [.. refusals];
            }
        }
    }

    /// <summary>Answers the next <paramref name="count"/> requests with <paramref name="status"/>, whatever they hold.</summary>
    public void Refuse(int count, int status)
    {
        lock (accepted)
        {
            forcedRemaining = count;
            forcedStatus = status;
        }
    }

    private ReceiverReply Answer(ReceivedRequest request)
    {
        lock (accepted)
        {
            if (forcedRemaining > 0)
            {
                forcedRemaining--;
                return Refuse(new ReceiverReply(forcedStatus, "refused by the test"));
            }
            var refusal = Check(request);
            if (refusal is not null)
            {
                return Refuse(refusal);
            }
            using var document = JsonDocument.Parse(request.Body);
            accepted.Add([.. document.RootElement.EnumerateArray().Select(e => e.GetProperty("id").GetString()!)]);
            return ReceiverReply.Ok;
        }
    }

    private ReceiverReply Refuse(ReceiverReply reply)
    {
        refusals.Add($"{reply.Status} {reply.Body}");
        return reply;
    }

    private ReceiverReply? Check(ReceivedRequest request)
    {
        if (request.Method != "POST" || !request.Path.StartsWith("/api/events", StringComparison.Ordinal))
        {
            return new ReceiverReply(404, $"{request.Method} {request.Path}: publish with POST /api/events");
        }
        if (Authorization(request) is { } unauthorized)
        {
            return unauthorized;
        }
        if (!string.Equals(request.Header("content-type"), BatchContentType, StringComparison.OrdinalIgnoreCase))
        {
            return new ReceiverReply(400, $"content type {request.Header("content-type")}, expected {BatchContentType}");
        }
        if (request.Body.Length > MaxRequestBytes)
        {
            return new ReceiverReply(413, $"{request.Body.Length} bytes, over the 1 MB limit");
        }
        return Schema(request.Body);
    }

    private ReceiverReply? Authorization(ReceivedRequest request)
    {
        if (Key is not null)
        {
            return request.Header("aeg-sas-key") == Key ? null : new ReceiverReply(401, "aeg-sas-key missing or wrong");
        }
        var authorization = request.Header("authorization");
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.Ordinal) || authorization.Length <= "Bearer ".Length)
        {
            return new ReceiverReply(401, "bearer token required");
        }
        BearerTokens.Add(authorization["Bearer ".Length..]);
        return null;
    }

    private static ReceiverReply? Schema(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind != JsonValueKind.Array)
            {
                return new ReceiverReply(400, "expected a JSON array of events");
            }
            var index = 0;
            foreach (var element in document.RootElement.EnumerateArray())
            {
                if (element.ValueKind != JsonValueKind.Object
                    || !element.TryGetProperty("specversion", out var version) || version.ValueKind != JsonValueKind.String || version.GetString() != "1.0")
                {
                    return new ReceiverReply(400, $"event {index}: specversion must be \"1.0\"");
                }
                foreach (var required in new[] { "id", "source", "type" })
                {
                    if (!element.TryGetProperty(required, out var value) || value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(value.GetString()))
                    {
                        return new ReceiverReply(400, $"event {index}: {required} is required");
                    }
                }
                index++;
            }
            return null;
        }
        catch (JsonException e)
        {
            return new ReceiverReply(400, $"not JSON: {e.Message}");
        }
    }

    public ValueTask DisposeAsync() => receiver.DisposeAsync();
}
