using System.Runtime.Serialization;
using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Delivery;
using CloudDelivery.Smtp;

namespace CloudDelivery.Azure.Queue;

/// <summary>A state change of a recipient, as the sender can read it.</summary>
public sealed record DeliveryEvent(DateTimeOffset At, string Type, string Detail);

/// <summary>
/// One recipient of one message, in Table Storage: partition = recipient domain, so the delivery of a
/// domain reads and writes one partition (and batches within it). The body lives in Blob Storage.
/// </summary>
public sealed class RecipientRecord : ITableEntity
{
    /// <summary>Row keys of records sort before this; it is the key of the domain's lease entity.</summary>
    public const string LeaseRowKey = "~lease";

    /// <summary>Row keys of records sort before this; the lease and the event outbox's rows ("~event.…") after it.</summary>
    public const string RecordRowKeyLimit = "~";

    /// <summary>Recipient domain in A-labels, or the IP literal.</summary>
    public string PartitionKey { get; set; } = string.Empty;

    /// <summary>"{messageId}.{index}": a message's recipients of one domain sort together.</summary>
    public string RowKey { get; set; } = string.Empty;

    public DateTimeOffset? Timestamp { get; set; }

    public ETag ETag { get; set; }

    public string MessageId { get; set; } = string.Empty;

    /// <summary>Envelope sender; empty for the null sender.</summary>
    public string Sender { get; set; } = string.Empty;

    public string Recipient { get; set; } = string.Empty;

    /// <summary>Blob name of the body, or <see cref="InlineBodyMarker"/> when the message's first record holds it.</summary>
    public string Body { get; set; } = string.Empty;

    /// <summary>
    /// A small body of a message whose recipients share one domain, kept in the message's first record
    /// instead of a blob: still stored once, and it saves a blob write and a blob read per message.
    /// </summary>
    public byte[]? InlineBody { get; set; }

    public const string InlineBodyMarker = "inline";

    public long BodySize { get; set; }

    public bool Has8Bit { get; set; }

    public bool SmtpUtf8 { get; set; }

    /// <summary>default, requiretls or tls-required-no: see <see cref="RecipientRecordMapping"/>.</summary>
    public string TlsRequirement { get; set; } = RecipientRecordMapping.DefaultTlsColumn;

    /// <summary>The message is a DSN: failures do not produce further DSNs.</summary>
    public bool IsDsn { get; set; }

    /// <summary>The message is a TLSRPT report: its deliveries are not counted in TLSRPT results and it gets no DSN (as mox).</summary>
    public bool IsTlsReport { get; set; }

    /// <summary>The application's tags, a JSON object of strings; null when the message has none.</summary>
    public string? Tags { get; set; }

    /// <summary>The tags, parsed.</summary>
    [IgnoreDataMember]
    public IReadOnlyDictionary<string, string> TagMap => Tags is null ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(Tags) ?? [];

    /// <summary>One of <see cref="RecipientState"/>: see <see cref="RecipientRecordMapping"/>.</summary>
    public string State { get; set; } = RecipientState.Queued;

    public int Attempts { get; set; }

    public DateTimeOffset SubmittedAt { get; set; }

    public DateTimeOffset NextAttemptAt { get; set; }

    public DateTimeOffset? LastAttemptAt { get; set; }

    public int LastCode { get; set; }

    // Stored as "" when absent, so a state update (a merge, see ToStateEntity) can clear them; read as null.
    public string? LastEnhancedCode { get; set => field = string.IsNullOrEmpty(value) ? null : value; }

    public string? LastText { get; set => field = string.IsNullOrEmpty(value) ? null : value; }

    public string? LastHost { get; set => field = string.IsNullOrEmpty(value) ? null : value; }

    /// <summary>The last attempt's bounce category ("throttled", "bad-mailbox", …) as the configured classifier saw it.</summary>
    public string? LastCategory { get; set => field = string.IsNullOrEmpty(value) ? null : value; }

    /// <summary>
    /// The category status, the API and events show: the stored one, or for a record written before the
    /// column existed, the shipped rules' reading of its stored reply; "none" when delivered or never attempted.
    /// </summary>
    [IgnoreDataMember]
    public string Category => State == RecipientState.Delivered || LastAttemptAt is null ? BounceClassification.Name(BounceCategory.None)
        : LastCategory ?? BounceClassification.Name(BounceClassification.Of(new SmtpReply(LastCode, LastEnhancedCode, LastText ?? string.Empty)));

    public bool DelayDsnSent { get; set; }

    /// <summary>JSON: host → addresses dialled, for the family preference of the next attempt.</summary>
    public string? DialledAddresses { get; set; }

    /// <summary>JSON array of <see cref="DeliveryEvent"/>.</summary>
    public string Events { get; set; } = "[]";

    /// <summary>The recipient domain: the partition, less its shard suffix when the domain is sharded (see <see cref="DomainPartition"/>).</summary>
    [IgnoreDataMember]
    public string Domain => DomainPartition.DomainOf(PartitionKey);

    /// <summary>The id callers use: "{partition}/{rowKey}", a point read in Table Storage.</summary>
    [IgnoreDataMember]
    public string Id => $"{PartitionKey}/{RowKey}";

    /// <summary>The events, parsed.</summary>
    [IgnoreDataMember]
    public IReadOnlyList<DeliveryEvent> EventList => JsonSerializer.Deserialize<List<DeliveryEvent>>(Events) ?? [];

    /// <summary>
    /// The fields that change after submission (attempts, results, state, events), for a merge update:
    /// the envelope and an inline body are written once, so a state change neither resends nor reparses them.
    /// </summary>
    public TableEntity ToStateEntity()
    {
        var entity = new TableEntity(PartitionKey, RowKey)
        {
            [nameof(State)] = State,
            [nameof(Attempts)] = Attempts,
            [nameof(NextAttemptAt)] = NextAttemptAt,
            [nameof(LastCode)] = LastCode,
            [nameof(LastEnhancedCode)] = LastEnhancedCode ?? string.Empty,
            [nameof(LastText)] = LastText ?? string.Empty,
            [nameof(LastHost)] = LastHost ?? string.Empty,
            [nameof(LastCategory)] = LastCategory ?? string.Empty,
            [nameof(DelayDsnSent)] = DelayDsnSent,
            [nameof(Events)] = Events,
        };
        if (LastAttemptAt is { } lastAttemptAt)
        {
            entity[nameof(LastAttemptAt)] = lastAttemptAt;
        }
        if (DialledAddresses is not null)
        {
            entity[nameof(DialledAddresses)] = DialledAddresses;
        }
        return entity;
    }

    public void AddEvent(DateTimeOffset at, string type, string detail)
    {
        var list = JsonSerializer.Deserialize<List<DeliveryEvent>>(Events) ?? [];
        list.Add(new DeliveryEvent(at, type, detail));
        Events = JsonSerializer.Serialize(list);
    }
}
