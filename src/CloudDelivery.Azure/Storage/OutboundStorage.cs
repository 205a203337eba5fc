using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Storage;

/// <summary>Where the queue keeps its state. Bound from configuration ("CloudDelivery:Storage").</summary>
public sealed class OutboundStorageOptions
{
    /// <summary>A storage connection string; the default is Azurite's. Ignored when <see cref="AccountName"/> is set.</summary>
    public string ConnectionString { get; set; } = "UseDevelopmentStorage=true";

    /// <summary>
    /// The storage account to reach with an Entra ID token instead of a connection string (Azure: the
    /// app's managed identity, see CloudDelivery:ManagedIdentityClientId). Shared keys can then be
    /// disabled on the account. Empty: <see cref="ConnectionString"/> is used.
    /// </summary>
    public string? AccountName { get; set; }

    /// <summary>DNS suffix of the account's endpoints (https://{account}.{blob|queue|table}.{suffix}); differs in sovereign clouds.</summary>
    public string EndpointSuffix { get; set; } = "core.windows.net";

    /// <summary>Blob service URI, overriding the one derived from <see cref="AccountName"/> (custom domains, private endpoints, emulators' path-style URIs).</summary>
    public string? BlobEndpoint { get; set; }

    /// <summary>Queue service URI, overriding the one derived from <see cref="AccountName"/>.</summary>
    public string? QueueEndpoint { get; set; }

    /// <summary>Table service URI, overriding the one derived from <see cref="AccountName"/>.</summary>
    public string? TableEndpoint { get; set; }

    /// <summary>True when storage is reached with a token credential rather than the connection string.</summary>
    public bool UsesTokenCredential => !string.IsNullOrWhiteSpace(AccountName);

    /// <summary>The service URI of <paramref name="service"/> ("blob", "queue" or "table") for token access.</summary>
    /// <exception cref="FormatException">An explicit endpoint is not an absolute URI, or no account name is set.</exception>
    public Uri ServiceEndpoint(string service)
    {
        var (setting, configured) = service switch
        {
            "blob" => (nameof(BlobEndpoint), BlobEndpoint),
            "queue" => (nameof(QueueEndpoint), QueueEndpoint),
            "table" => (nameof(TableEndpoint), TableEndpoint),
            _ => throw new ArgumentOutOfRangeException(nameof(service), service, "blob, queue or table"),
        };
        if (!string.IsNullOrWhiteSpace(configured))
        {
            if (!Uri.TryCreate(configured.Trim(), UriKind.Absolute, out var explicitEndpoint) || explicitEndpoint.Scheme is not ("https" or "http"))
            {
                throw new FormatException($"CloudDelivery:Storage:{setting} '{configured}' is not an absolute http(s) URI");
            }
            return explicitEndpoint;
        }
        if (!UsesTokenCredential)
        {
            throw new FormatException("CloudDelivery:Storage:AccountName is not set");
        }
        return new Uri($"https://{AccountName!.Trim()}.{service}.{EndpointSuffix.Trim().Trim('.')}");
    }

    /// <summary>Blob container for message bodies.</summary>
    public string BodiesContainer { get; set; } = "cd-bodies";

    /// <summary>Table of recipient records (partition = recipient domain) and domain leases.</summary>
    public string RecipientsTable { get; set; } = "cdrecipients";

    /// <summary>Table of TLSRPT results per UTC day (partition) and recipient domain, and report send marks.</summary>
    public string TlsReportsTable { get; set; } = "cdtlsrpt";

    /// <summary>Table of cached MTA-STS policies (partition = recipient domain).</summary>
    public string MtaStsTable { get; set; } = "cdmtasts";

    /// <summary>Table of events parked after a sink kept failing past Events:Retention (partition = sink, row = event id).</summary>
    public string ParkedEventsTable { get; set; } = "cdeventsparked";
    /// <summary>Table of idempotency keys of submissions (see Submission/IdempotentSubmission), until they expire.</summary>
    public string IdempotencyTable { get; set; } = "cdidempotency";

    /// <summary>Table of throttle state shared between instances (partition = shaping key; see Shaping/ThrottleStateTable).</summary>
    public string ShapingTable { get; set; } = "cdshaping";
    /// <summary>Table of the suppression list (partition = scope: "global" or a sender domain; see Suppression/SuppressionList).</summary>
    public string SuppressionsTable { get; set; } = "cdsuppressions";

    /// <summary>Queue of per-domain wake-ups.</summary>
    public string WakeUpQueue { get; set; } = "cd-wakeups";

    /// <summary>Where wake-ups go that could not be processed after the allowed number of tries.</summary>
    public string PoisonQueue { get; set; } = "cd-wakeups-poison";

    /// <summary>The Azure SDK's own request logging (verbose; for troubleshooting storage access).</summary>
    public bool SdkLogging { get; set; }

    /// <summary>The Azure SDK's distributed tracing of storage calls (spans in Application Insights).</summary>
    public bool SdkTracing { get; set; } = true;
}

/// <summary>Fails host start-up on unusable token-access storage settings, rather than at the first storage call.</summary>
internal sealed class OutboundStorageOptionsValidator : IValidateOptions<Hosting.CloudDeliveryOptions>
{
    public ValidateOptionsResult Validate(string? name, Hosting.CloudDeliveryOptions options)
    {
        if (!options.Storage.UsesTokenCredential)
        {
            return ValidateOptionsResult.Success;
        }
        try
        {
            foreach (var service in new[] { "blob", "queue", "table" })
            {
                options.Storage.ServiceEndpoint(service);
            }
            return ValidateOptionsResult.Success;
        }
        catch (FormatException e)
        {
            return ValidateOptionsResult.Fail(e.Message);
        }
    }
}

/// <summary>
/// Counts storage requests (transactions, the main cost driver of Azure Storage), for the benchmark and
/// for operators' metrics. One counting policy per service is installed on every client, since the price of
/// a request depends on the service: a blob write costs about 140 table transactions.
/// </summary>
public sealed class StorageTransactionCounter
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> byKind = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> byService = new(StringComparer.Ordinal);
    private long count;

    public long Count => Interlocked.Read(ref count);

    /// <summary>Requests by service, method and kind ("table POST batch", "table PUT entity", "queue DELETE message"…), to see where they go.</summary>
    public IReadOnlyDictionary<string, long> ByKind => byKind;

    /// <summary>Requests by service ("blob", "queue", "table"), the unit Azure prices transactions in.</summary>
    public IReadOnlyDictionary<string, long> ByService => byService;

    /// <summary>The policy that counts the requests of one service's clients.</summary>
    internal HttpPipelinePolicy For(string service) => new ServiceCounter(this, service);

    private void Record(string service, HttpMessage message)
    {
        Interlocked.Increment(ref count);
        byService.AddOrUpdate(service, 1, (_, n) => n + 1);
        byKind.AddOrUpdate($"{service} {message.Request.Method} {KindOf(message.Request.Uri.Path)}", 1, (_, n) => n + 1);
    }

    private static string KindOf(string path) =>
        path.EndsWith("/$batch", StringComparison.Ordinal) ? "batch"
        : path.Contains("(PartitionKey=", StringComparison.Ordinal) ? "entity"
        : path.Contains("/messages/", StringComparison.Ordinal) ? "message"
        : path.EndsWith("/messages", StringComparison.Ordinal) ? "messages"
        : path.Contains("()", StringComparison.Ordinal) || path.Contains('(', StringComparison.Ordinal) ? "table"
        : "other";

    private sealed class ServiceCounter(StorageTransactionCounter counter, string service) : HttpPipelineSynchronousPolicy
    {
        public override void OnSendingRequest(HttpMessage message) => counter.Record(service, message);
    }
}

/// <summary>
/// The storage clients of the queue, created once and shared: from the connection string, or, when
/// <see cref="OutboundStorageOptions.AccountName"/> is set, from the account's endpoints with a token
/// credential (Entra ID; https://learn.microsoft.com/azure/storage/common/authorize-data-access).
/// </summary>
public sealed class OutboundStorage
{
    /// <param name="options">Where the state lives.</param>
    /// <param name="counter">Counts requests; a new one when null.</param>
    /// <param name="credential">
    /// The token credential for <see cref="OutboundStorageOptions.AccountName"/> access (the hosts pass
    /// <see cref="Hosting.AzureCredentials.Create"/>); DefaultAzureCredential when null. Unused with a connection string.
    /// </param>
    public OutboundStorage(OutboundStorageOptions options, StorageTransactionCounter? counter = null, TokenCredential? credential = null)
        : this(options, counter, credential, transport: null)
    {
    }

    /// <summary>As the public constructor, with <paramref name="transport"/> for every client (tests: trusting a loopback emulator's certificate).</summary>
    /// <param name="options">Where the state lives.</param>
    /// <param name="counter">Counts requests; a new one when null.</param>
    /// <param name="credential">The token credential for account-name access.</param>
    /// <param name="transport">The HTTP transport; the SDK's default when null.</param>
    internal OutboundStorage(OutboundStorageOptions options, StorageTransactionCounter? counter, TokenCredential? credential, HttpPipelineTransport? transport)
    {
        Options = options;
        Counter = counter ?? new StorageTransactionCounter();
        var blobOptions = Configure(new BlobClientOptions(), options, transport);
        var tableOptions = Configure(new TableClientOptions(), options, transport);
        var queueOptions = Configure(new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 }, options, transport);
        // The worker receives wake-ups undecoded and decodes them itself: with the SDK decoding, one message
        // that is not base64 (put there by a tool that does not encode) fails every receive of the queue.
        var undecodedQueueOptions = Configure(new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None }, options, transport);
        if (options.UsesTokenCredential)
        {
            credential ??= new DefaultAzureCredential();
            var blob = options.ServiceEndpoint("blob");
            var queue = options.ServiceEndpoint("queue");
            var table = options.ServiceEndpoint("table");
            Bodies = new BlobContainerClient(Child(blob, options.BodiesContainer), credential, blobOptions);
            WakeUps = new QueueClient(Child(queue, options.WakeUpQueue), credential, queueOptions);
            UndecodedWakeUps = new QueueClient(Child(queue, options.WakeUpQueue), credential, undecodedQueueOptions);
            Poison = new QueueClient(Child(queue, options.PoisonQueue), credential, queueOptions);
            Recipients = new TableClient(table, options.RecipientsTable, credential, tableOptions);
            TlsReports = new TableClient(table, options.TlsReportsTable, credential, tableOptions);
            MtaStsPolicies = new TableClient(table, options.MtaStsTable, credential, tableOptions);
            ParkedEvents = new TableClient(table, options.ParkedEventsTable, credential, tableOptions);
            Idempotency = new TableClient(table, options.IdempotencyTable, credential, tableOptions);
            Suppressions = new TableClient(table, options.SuppressionsTable, credential, tableOptions);
            Shaping = new TableClient(table, options.ShapingTable, credential, tableOptions);
        }
        else
        {
            Bodies = new BlobContainerClient(options.ConnectionString, options.BodiesContainer, blobOptions);
            Recipients = new TableClient(options.ConnectionString, options.RecipientsTable, tableOptions);
            TlsReports = new TableClient(options.ConnectionString, options.TlsReportsTable, tableOptions);
            WakeUps = new QueueClient(options.ConnectionString, options.WakeUpQueue, queueOptions);
            UndecodedWakeUps = new QueueClient(options.ConnectionString, options.WakeUpQueue, undecodedQueueOptions);
            MtaStsPolicies = new TableClient(options.ConnectionString, options.MtaStsTable, tableOptions);
            ParkedEvents = new TableClient(options.ConnectionString, options.ParkedEventsTable, tableOptions);
            Poison = new QueueClient(options.ConnectionString, options.PoisonQueue, queueOptions);
            Idempotency = new TableClient(options.ConnectionString, options.IdempotencyTable, tableOptions);
            Suppressions = new TableClient(options.ConnectionString, options.SuppressionsTable, tableOptions);
            Shaping = new TableClient(options.ConnectionString, options.ShapingTable, tableOptions);
        }
        RecipientWrites = new PartitionWriteBatcher(Recipients);
    }

    public OutboundStorageOptions Options { get; }

    /// <summary>A container's or queue's URI under a service URI, which may carry a path (path-style emulator URIs).</summary>
    private static Uri Child(Uri service, string name) => new($"{service.AbsoluteUri.TrimEnd('/')}/{Uri.EscapeDataString(name)}");

    private T Configure<T>(T clientOptions, OutboundStorageOptions options, HttpPipelineTransport? transport)
        where T : ClientOptions
    {
        var service = clientOptions switch
        {
            BlobClientOptions => "blob",
            QueueClientOptions => "queue",
            _ => "table",
        };
        if (transport is not null)
        {
            clientOptions.Transport = transport;
        }
        clientOptions.AddPolicy(Counter.For(service), HttpPipelinePosition.PerRetry);
        clientOptions.AddPolicy(Reachability, HttpPipelinePosition.PerRetry);
        // The SDK's defaults (0.8 s doubling, and 100 s per try) hold a submission for 11 s before a storage
        // outage is reported, or minutes against a storage endpoint that accepts and never answers. Shorter
        // waits let the HTTP endpoint answer 503 promptly; a failed worker run is retried by its wake-up.
        clientOptions.Retry.MaxRetries = 3;
        clientOptions.Retry.Delay = TimeSpan.FromMilliseconds(250);
        clientOptions.Retry.MaxDelay = TimeSpan.FromSeconds(2);
        clientOptions.Retry.NetworkTimeout = TimeSpan.FromSeconds(30);
        // The SDK's per-request logging costs CPU on every storage call; the queue logs what matters itself.
        clientOptions.Diagnostics.IsLoggingEnabled = options.SdkLogging;
        clientOptions.Diagnostics.IsDistributedTracingEnabled = options.SdkTracing;
        return clientOptions;
    }

    public StorageTransactionCounter Counter { get; }

    /// <summary>Whether storage has been answering this process's requests lately (for health).</summary>
    public StorageReachability Reachability { get; } = new();

    public BlobContainerClient Bodies { get; }

    public TableClient Recipients { get; }

    /// <summary>Record inserts and outcome writes, shared among concurrent writers of a domain (group commit).</summary>
    public PartitionWriteBatcher RecipientWrites { get; }

    public TableClient TlsReports { get; }

    public QueueClient WakeUps { get; }

    /// <summary>The wake-up queue without base64 decoding: what the worker receives through (see <see cref="WakeUps.WakeUpWorker"/>).</summary>
    public QueueClient UndecodedWakeUps { get; }

    /// <summary>The MTA-STS policy cache (see TableMtaStsPolicyStore).</summary>
    public TableClient MtaStsPolicies { get; }

    public QueueClient Poison { get; }

    /// <summary>Events parked per sink (see Events/ParkedEvents).</summary>
    public TableClient ParkedEvents { get; }
    /// <summary>Idempotency keys of submissions (see Submission/IdempotencyStore).</summary>
    public TableClient Idempotency { get; }
    /// <summary>The suppression list (see Suppression/SuppressionList).</summary>
    public TableClient Suppressions { get; }

    /// <summary>Throttle state shared between instances (see Shaping/ThrottleStateTable).</summary>
    public TableClient Shaping { get; }

    /// <summary>Creates the container, tables and queues if they do not exist (idempotent).</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken)
    {
        await Bodies.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await Recipients.CreateIfNotExistsAsync(cancellationToken);
        await TlsReports.CreateIfNotExistsAsync(cancellationToken);
        await WakeUps.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await Poison.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await MtaStsPolicies.CreateIfNotExistsAsync(cancellationToken);
        await ParkedEvents.CreateIfNotExistsAsync(cancellationToken);
        await Idempotency.CreateIfNotExistsAsync(cancellationToken);
        await Suppressions.CreateIfNotExistsAsync(cancellationToken);
        await Shaping.CreateIfNotExistsAsync(cancellationToken);
    }
}
