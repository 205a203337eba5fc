using CloudDelivery.Azure.Hosting;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// Where delivery events are pushed, bound from <see cref="SectionPath"/> by
/// <see cref="EventSinkServices.AddEventSinks"/>: its <c>EventGrid</c> and <c>Webhooks</c> subsections only
/// (the outbox's own settings under the same section belong to the dispatcher). No endpoint and no webhook:
/// no sinks.
/// </summary>
public sealed class EventSinkOptions
{
    /// <summary>The section this is bound from; also the prefix of its error messages.</summary>
    public const string SectionPath = CloudDeliveryOptions.SectionName + ":Events";

    /// <summary>An Azure Event Grid topic (CloudDelivery:Events:EventGrid:Endpoint, …).</summary>
    public EventGridSinkOptions EventGrid { get; set; } = new();

    /// <summary>HTTPS webhooks (CloudDelivery:Events:Webhooks:0:Url, …:Webhooks:1:Url, …).</summary>
    public List<WebhookSinkOptions> Webhooks { get; set; } = [];

    /// <summary>Every bad setting, one line each naming its key.</summary>
    public IEnumerable<string> Problems()
    {
        var problems = EventGrid.Problems($"{SectionPath}:EventGrid").ToList();
        for (var index = 0; index < Webhooks.Count; index++)
        {
            problems.AddRange(Webhooks[index].Problems($"{SectionPath}:Webhooks:{index}"));
        }
        if (problems.Count == 0)
        {
            var names = Webhooks.Select(w => w.SinkName).Concat(EventGrid.IsEnabled ? [EventGridSink.SinkName] : []);
            foreach (var duplicate in names.GroupBy(n => n, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
            {
                // Parked events and metrics are kept per sink name: two sinks cannot share one.
                problems.Add($"{SectionPath}:Webhooks: two sinks are named '{duplicate.Key}'; give each webhook its own Name");
            }
        }
        return problems;
    }

    /// <summary>A timeout or batch size within bounds, else the line that says so.</summary>
    internal static IEnumerable<string> RangeProblems(string path, int timeoutSeconds, int maxBatchSize, int maxBatchLimit)
    {
        if (timeoutSeconds is < 1 or > 300)
        {
            yield return $"{path}:TimeoutSeconds {timeoutSeconds}: expected 1 to 300";
        }
        if (maxBatchSize < 1 || maxBatchSize > maxBatchLimit)
        {
            yield return $"{path}:MaxBatchSize {maxBatchSize}: expected 1 to {maxBatchLimit}";
        }
    }

    /// <summary>App Service leaves a Key Vault reference it could not resolve as the literal text.</summary>
    internal static bool IsUnresolvedKeyVaultReference(string? value) =>
        value is not null && value.TrimStart().StartsWith("@Microsoft.KeyVault(", StringComparison.OrdinalIgnoreCase);
}

/// <summary>An Event Grid topic taking CloudEvents 1.0 (inputSchema CloudEventSchemaV1_0).</summary>
public sealed class EventGridSinkOptions
{
    /// <summary>The topic endpoint, https://&lt;topic&gt;.&lt;region&gt;-1.eventgrid.azure.net/api/events; empty means no Event Grid sink.</summary>
    public string? Endpoint { get; set; }

    /// <summary>
    /// A topic access key (aeg-sas-key), for development only; empty means the app's managed identity
    /// (CloudDelivery:ManagedIdentityClientId), which needs the "EventGrid Data Sender" role on the topic.
    /// </summary>
    public string? Key { get; set; }

    /// <summary>Time allowed for one publish request, connect to response, SDK retry included.</summary>
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Most events in one publish request (also split to stay under Event Grid's 1 MB request limit).</summary>
    public int MaxBatchSize { get; set; } = 100;

    internal bool IsEnabled => !string.IsNullOrWhiteSpace(Endpoint);

    internal Uri EndpointUri => new(Endpoint!.Trim(), UriKind.Absolute);

    internal IEnumerable<string> Problems(string path)
    {
        if (!IsEnabled)
        {
            yield break;
        }
        if (!Uri.TryCreate(Endpoint!.Trim(), UriKind.Absolute, out var endpoint) || endpoint.Scheme != Uri.UriSchemeHttps)
        {
            yield return $"{path}:Endpoint {Endpoint}: expected an absolute https URL, e.g. https://mytopic.westeurope-1.eventgrid.azure.net/api/events";
        }
        if (EventSinkOptions.IsUnresolvedKeyVaultReference(Key))
        {
            yield return $"{path}:Key is an unresolved Key Vault reference; check the secret URI and the app identity's access to it";
        }
        foreach (var problem in EventSinkOptions.RangeProblems(path, TimeoutSeconds, MaxBatchSize, maxBatchLimit: 1000))
        {
            yield return problem;
        }
    }
}

/// <summary>One HTTPS webhook receiving signed CloudEvents batches.</summary>
public sealed class WebhookSinkOptions
{
    /// <summary>
    /// The receiver's URL. Always https (the body carries recipient addresses and the signature is no
    /// substitute for confidentiality); a loopback receiver needs Delivery:AllowPrivateAddresses and a
    /// certificate under Delivery:TrustCaFile, as tests use.
    /// </summary>
    public string? Url { get; set; }

    /// <summary>The sink's name in logs, metrics and parked events; default webhook:{host}.</summary>
    public string? Name { get; set; }

    /// <summary>Comma-separated envelope sender domains whose events this webhook receives; empty means all.</summary>
    public string? SenderDomains { get; set; }

    /// <summary>
    /// The signing secret: a Standard Webhooks <c>whsec_</c>+base64 secret, or any other string (its UTF-8
    /// bytes are the key). In Azure a Key Vault reference.
    /// </summary>
    public string? Secret { get; set; }

    /// <summary>Time allowed for one POST, connect to response status.</summary>
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Most events in one POST.</summary>
    public int MaxBatchSize { get; set; } = 100;

    internal string SinkName => string.IsNullOrWhiteSpace(Name)
        ? $"webhook:{(Uri.TryCreate(Url?.Trim(), UriKind.Absolute, out var url) ? url.Host : Url)}"
        : Name.Trim();

    internal IReadOnlyList<string> SenderDomainList() =>
        (SenderDomains ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => Addressing.Domain.Parse(d).Ascii).ToList();

    internal IEnumerable<string> Problems(string path)
    {
        if (string.IsNullOrWhiteSpace(Url))
        {
            yield return $"{path}:Url is required";
        }
        else if (!Uri.TryCreate(Url.Trim(), UriKind.Absolute, out var url) || url.Scheme != Uri.UriSchemeHttps)
        {
            yield return $"{path}:Url {Url}: expected an absolute https URL";
        }
        if (string.IsNullOrWhiteSpace(Secret))
        {
            yield return $"{path}:Secret is required: every webhook request is signed";
        }
        else if (EventSinkOptions.IsUnresolvedKeyVaultReference(Secret))
        {
            yield return $"{path}:Secret is an unresolved Key Vault reference; check the secret URI and the app identity's access to it";
        }
        else if (SecretProblem() is { } secretProblem)
        {
            yield return $"{path}:Secret: {secretProblem}";
        }
        foreach (var domain in (SenderDomains ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Addressing.Domain.TryParse(domain, out _, out var error))
            {
                yield return $"{path}:SenderDomains '{domain}' is not a domain: {error}";
            }
        }
        foreach (var problem in EventSinkOptions.RangeProblems(path, TimeoutSeconds, MaxBatchSize, maxBatchLimit: 1000))
        {
            yield return problem;
        }
    }

    private string? SecretProblem()
    {
        try
        {
            _ = new WebhookSignature(Secret!);
            return null;
        }
        catch (FormatException e)
        {
            return e.Message;
        }
    }
}
