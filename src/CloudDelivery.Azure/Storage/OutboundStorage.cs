using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace CloudDelivery.Azure.Storage;

/// <summary>Where the queue keeps its state. Bound from configuration ("CloudDelivery:Storage").</summary>
public sealed class OutboundStorageOptions
{
    /// <summary>A storage connection string; the default is Azurite's.</summary>
    public string ConnectionString { get; set; } = "UseDevelopmentStorage=true";

    /// <summary>Blob container for message bodies.</summary>
    public string BodiesContainer { get; set; } = "cd-bodies";

    /// <summary>Table of recipient records (partition = recipient domain) and domain leases.</summary>
    public string RecipientsTable { get; set; } = "cdrecipients";

    /// <summary>Table of TLSRPT results per UTC day (partition) and recipient domain, and report send marks.</summary>
    public string TlsReportsTable { get; set; } = "cdtlsrpt";

    /// <summary>Table of cached MTA-STS policies (partition = recipient domain).</summary>
    public string MtaStsTable { get; set; } = "cdmtasts";

    /// <summary>Queue of per-domain wake-ups.</summary>
    public string WakeUpQueue { get; set; } = "cd-wakeups";

    /// <summary>Where wake-ups go that could not be processed after the allowed number of tries.</summary>
    public string PoisonQueue { get; set; } = "cd-wakeups-poison";

    /// <summary>The Azure SDK's own request logging (verbose; for troubleshooting storage access).</summary>
    public bool SdkLogging { get; set; }

    /// <summary>The Azure SDK's distributed tracing of storage calls (spans in Application Insights).</summary>
    public bool SdkTracing { get; set; } = true;
}

/// <summary>
/// Counts storage requests (transactions, the main cost driver of Azure Storage), for the benchmark and
/// for operators' metrics. Installed as an HTTP pipeline policy on every client.
/// </summary>
public sealed class StorageTransactionCounter : HttpPipelineSynchronousPolicy
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> byKind = new(StringComparer.Ordinal);
    private long count;

    public long Count => Interlocked.Read(ref count);

    /// <summary>Requests by method and kind ("POST batch", "PUT entity", "DELETE message"…), to see where they go.</summary>
    public IReadOnlyDictionary<string, long> ByKind => byKind;

    public override void OnSendingRequest(HttpMessage message)
    {
        Interlocked.Increment(ref count);
        byKind.AddOrUpdate($"{message.Request.Method} {KindOf(message.Request.Uri.Path)}", 1, (_, n) => n + 1);
    }

    private static string KindOf(string path) =>
        path.EndsWith("/$batch", StringComparison.Ordinal) ? "batch"
        : path.Contains("(PartitionKey=", StringComparison.Ordinal) ? "entity"
        : path.Contains("/messages/", StringComparison.Ordinal) ? "message"
        : path.EndsWith("/messages", StringComparison.Ordinal) ? "messages"
        : path.Contains("()", StringComparison.Ordinal) || path.Contains('(', StringComparison.Ordinal) ? "table"
        : "other";
}

/// <summary>The storage clients of the queue, created once and shared.</summary>
public sealed class OutboundStorage
{
    public OutboundStorage(OutboundStorageOptions options, StorageTransactionCounter? counter = null)
    {
        Options = options;
        Counter = counter ?? new StorageTransactionCounter();
        var blobOptions = Configure(new BlobClientOptions(), options);
        var tableOptions = Configure(new TableClientOptions(), options);
        var queueOptions = Configure(new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 }, options);
        Bodies = new BlobContainerClient(options.ConnectionString, options.BodiesContainer, blobOptions);
        Recipients = new TableClient(options.ConnectionString, options.RecipientsTable, tableOptions);
        TlsReports = new TableClient(options.ConnectionString, options.TlsReportsTable, tableOptions);
        WakeUps = new QueueClient(options.ConnectionString, options.WakeUpQueue, queueOptions);
        MtaStsPolicies = new TableClient(options.ConnectionString, options.MtaStsTable, tableOptions);
        Poison = new QueueClient(options.ConnectionString, options.PoisonQueue, queueOptions);
    }

    public OutboundStorageOptions Options { get; }

    private T Configure<T>(T clientOptions, OutboundStorageOptions options)
        where T : ClientOptions
    {
        clientOptions.AddPolicy(Counter, HttpPipelinePosition.PerRetry);
        // The SDK's per-request logging costs CPU on every storage call; the queue logs what matters itself.
        clientOptions.Diagnostics.IsLoggingEnabled = options.SdkLogging;
        clientOptions.Diagnostics.IsDistributedTracingEnabled = options.SdkTracing;
        return clientOptions;
    }

    public StorageTransactionCounter Counter { get; }

    public BlobContainerClient Bodies { get; }

    public TableClient Recipients { get; }

    public TableClient TlsReports { get; }

    public QueueClient WakeUps { get; }

    /// <summary>The MTA-STS policy cache (see TableMtaStsPolicyStore).</summary>
    public TableClient MtaStsPolicies { get; }

    public QueueClient Poison { get; }

    /// <summary>Creates the container, tables and queues if they do not exist (idempotent).</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken)
    {
        await Bodies.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await Recipients.CreateIfNotExistsAsync(cancellationToken);
        await TlsReports.CreateIfNotExistsAsync(cancellationToken);
        await WakeUps.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await Poison.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await MtaStsPolicies.CreateIfNotExistsAsync(cancellationToken);
    }
}
