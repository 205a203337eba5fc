using System.Buffers;
using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs.Models;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Dkim;
using CloudDelivery.Messages;
using CloudDelivery.Queue;

namespace CloudDelivery.Azure.Queue;

/// <summary>Why a submission was refused: each maps to a 4xx answer, never a 500.</summary>
public enum SubmissionError
{
    InvalidSender,
    InvalidRecipient,
    NoRecipients,
    TooManyRecipients,
    EmptyMessage,
    TooLarge,
    ConflictingTlsOptions,
    InvalidTags,
}

/// <summary>A submission the caller got wrong; nothing was stored.</summary>
public sealed class SubmissionException(SubmissionError error, string message) : Exception(message)
{
    public SubmissionError Error { get; } = error;
}

/// <summary>A message to submit: envelope and body stream.</summary>
public sealed record SubmissionRequest
{
    /// <summary>Envelope sender; empty or "&lt;&gt;" for the null sender.</summary>
    public required string Sender { get; init; }

    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>The RFC 5322 message; read once, to its end.</summary>
    public required Stream Message { get; init; }

    /// <summary>REQUIRETLS (RFC 8689).</summary>
    public bool RequireTls { get; init; }

    /// <summary>As a "TLS-Required: No" header (also detected in the message itself).</summary>
    public bool TlsRequiredNo { get; init; }

    /// <summary>The message is a DSN or report: its own failures produce no DSN.</summary>
    public bool IsDsn { get; init; }

    /// <summary>The message is a TLSRPT report (RFC 8460 §5.3): no TLSRPT results about its delivery, no DSN.</summary>
    public bool IsTlsReport { get; init; }

    /// <summary>The application's key=value tags (validated by the caller), stored with every recipient and carried in its events.</summary>
    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>The JSON form's idempotencyKey field: the submission endpoint handles it (see IdempotentSubmission); the queue ignores it.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>The message id to store under (an idempotency reservation made it up front); null: a new one.</summary>
    public string? MessageId { get; init; }

    /// <summary>Finishing an interrupted submission of <see cref="MessageId"/>: the domains already stored are skipped (see <see cref="ResumedSubmission"/>).</summary>
    public ResumedSubmission? Resume { get; init; }
}

/// <summary>
/// What an interrupted submission already stored: the recipient domains whose records exist, each with the
/// partition (shard) they are in, and one of those records, whose body and body facts the missing domains
/// share rather than uploading the body again. <see cref="StoredRecord"/> is null when no domain is stored
/// yet; it must reference a blob unless every domain is stored (an inline body cannot be shared across partitions).
/// </summary>
public sealed record ResumedSubmission(IReadOnlyDictionary<string, string> StoredPartitions, RecipientRecord? StoredRecord);

/// <summary>What was stored: the message id and an id per recipient.</summary>
public sealed record SubmissionResult(string MessageId, long Size, IReadOnlyList<SubmittedRecipient> Recipients);

/// <summary>A stored recipient; <see cref="Id"/> is what status and queue commands take.</summary>
/// <param name="Recipient">The address as stored.</param>
/// <param name="Id">The recipient id.</param>
/// <param name="Status">"queued", or "suppressed" when the suppression list kept it from being queued.</param>
/// <param name="Reason">Why it is suppressed; null when queued.</param>
public sealed record SubmittedRecipient(string Recipient, string Id, string Status = RecipientState.Queued, string? Reason = null);

/// <summary>Limits and behaviour of the queue.</summary>
public sealed class OutboundQueueOptions
{
    /// <summary>Largest message accepted, in bytes after line-ending normalisation.</summary>
    public long MaxMessageBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Largest message the JSON form of POST /api/messages takes (decoded). A JSON body is held in memory
    /// while it is parsed, so this is lower than <see cref="MaxMessageBytes"/>; larger messages go raw
    /// (message/rfc822), which is streamed.
    /// </summary>
    public long MaxJsonMessageBytes { get; set; } = 10L * 1024 * 1024;

    public int MaxRecipients { get; set; } = 1000;

    /// <summary>How long a worker owns a domain; renewed while it delivers.</summary>
    public TimeSpan DomainLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A wake-up that finds its domain busy comes back after this long (or when the lease ends, if sooner).</summary>
    public TimeSpan BusyRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The retry schedule, with its jitter (see <see cref="RetrySchedule"/>).</summary>
    public RetrySchedule Retry { get; set; } = new();

    /// <summary>
    /// After a submission wakes a domain, further submissions to it within this window share one trailing
    /// wake-up at the window's end, so a burst costs a few queue messages and delivery runs rather than one
    /// per message. Zero wakes the domain at once for every submission.
    /// </summary>
    public TimeSpan WakeUpWindow { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Bodies up to this size, of messages whose recipients share one domain, are kept in the table.</summary>
    public int InlineBodyLimit { get; set; } = 48 * 1024;

    /// <summary>How long records stay after reaching a final state (for status queries) before the purge deletes them.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Ready records one delivery run loads at most; a domain with more is served in further runs under the
    /// same lease. Bounds a run's memory (records may hold their body inline) and its duration.
    /// </summary>
    public int MaxRecordsPerRun { get; set; } = 1000;

    /// <summary>
    /// How long an Idempotency-Key of POST /api/messages is remembered: a repeat within it gets the first
    /// answer and stores nothing. Afterwards the key is free again, and the purge deletes it.
    /// </summary>
    public TimeSpan IdempotencyWindow { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// Domains whose new records are always spread over a fixed number of shards (partition and lease per
    /// shard, see <see cref="HotDomains"/>): "gmail.com=4,outlook.com=2", each count a power of two up to 64.
    /// </summary>
    public string? Shards { get; set; }

    /// <summary>
    /// A delivery run that finds at least this many ready records marks its domain hot: new records are
    /// spread over <see cref="MaxShards"/> shards. A run reads at most <see cref="MaxRecordsPerRun"/>, so a
    /// larger threshold never triggers; zero turns automatic sharding off.
    /// </summary>
    public int HotDomainBacklog { get; set; } = 1000;

    /// <summary>Shards a hot domain is spread over (a power of two up to 64); 1 turns automatic sharding off.</summary>
    public int MaxShards { get; set; } = 4;

    /// <summary>How long a domain stays hot after a run last found its backlog past <see cref="HotDomainBacklog"/>.</summary>
    public TimeSpan HotDomainFor { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How often each process reads the hot set (one query); another process's mark reaches it within this.</summary>
    public TimeSpan HotSetRefresh { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// The durable queue's storage operations: accepting messages (body blob, recipient records, wake-ups)
/// and reading and writing records and leases. Submissions are the one way in, for HTTP and in-process
/// callers alike. With <paramref name="dkim"/>, every submission whose From domain has a key, DSNs
/// included, is stored DKIM-signed.
/// </summary>
public sealed class OutboundQueue(OutboundStorage storage, OutboundQueueOptions options, TimeProvider? time = null, DkimMessageSigner? dkim = null)
{
    /// <summary>Bodies up to this size are uploaded in one request; larger ones are streamed in blocks.</summary>
    private const int SingleUploadLimit = 4 * 1024 * 1024;

    private readonly TimeProvider clock = time ?? TimeProvider.System;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, WakeUpWindowState> wakeUpWindows = new(StringComparer.Ordinal);

    public OutboundStorage Storage => storage;

    /// <summary>Which domains are spread over shards, and how many (see <see cref="Queue.HotDomains"/>).</summary>
    public HotDomains HotDomains { get; } = new(storage.Recipients, options, time ?? TimeProvider.System);

    public OutboundQueueOptions Options => options;

    public TimeProvider Time => clock;

    /// <summary>Tells a worker in this process when the wake-ups this queue sends become visible.</summary>
    public WakeUpSignal WakeUpSent { get; } = new();

    /// <summary>
    /// Where record writes put their transitions' events (in the same transaction); null when no event
    /// sink is configured, and then no event is written.
    /// </summary>
    public EventOutbox? Events { get; init; }

    /// <summary>The DKIM signer applied at submission; null when nothing is signed.</summary>
    public DkimMessageSigner? Dkim => dkim;

    /// <summary>The suppression list every submission is checked against, and bounces are added to; null: none. Set once, when the services are composed.</summary>
    public Suppression.SuppressionList? Suppressions { get; set; }

    /// <summary>
    /// Validates and stores a message: the body once (inline in the first record when small, else in Blob
    /// Storage), one record per recipient in the recipient's domain partition (one insert or transaction
    /// per domain, shared with concurrent submissions to it), and a wake-up per domain.
    /// </summary>
    /// <exception cref="SubmissionException">The request is invalid; nothing was stored.</exception>
    public async Task<SubmissionResult> SubmitAsync(SubmissionRequest request, CancellationToken cancellationToken)
    {
        var sender = request.Sender is "" or "<>" ? null : ParseAddress(request.Sender, SubmissionError.InvalidSender, "sender");
        if (request.Recipients.Count == 0)
        {
            throw new SubmissionException(SubmissionError.NoRecipients, "no recipients");
        }
        if (request.Recipients.Count > options.MaxRecipients)
        {
            throw new SubmissionException(SubmissionError.TooManyRecipients, $"more than {options.MaxRecipients} recipients");
        }
        if (request.RequireTls && request.TlsRequiredNo)
        {
            throw new SubmissionException(SubmissionError.ConflictingTlsOptions, "REQUIRETLS and TLS-Required: No exclude each other");
        }
        var recipients = request.Recipients.Select(r => ParseAddress(r, SubmissionError.InvalidRecipient, "recipient")).Distinct().ToArray();
        MessageTags.Validate(request.Tags);
        // Every recipient of every message, DSNs included; a suppressed one is recorded, not queued.
        var suppressed = Suppressions is null ? new Dictionary<EmailAddress, Suppression.SuppressionMatch>() : await Suppressions.CheckAsync(sender, recipients, cancellationToken);

        var now = clock.GetUtcNow();
        var messageId = request.MessageId ?? Guid.CreateVersion7(now).ToString("N");
        using var body = new SubmissionStream(request.Message, options.MaxMessageBytes, request.Tags);
        var singleDomain = recipients.Where(r => !suppressed.ContainsKey(r)).Select(r => r.Domain).Distinct().Count() == 1;
        // Resuming: the body is stored already, with records referencing it; it is not read or uploaded again.
        var stored = request.Resume?.StoredRecord;
        var (signature, inline) = stored is not null ? ([], null)
            : suppressed.Count == recipients.Length ? await ReadBodyOnlyAsync(body, cancellationToken)
            : await StoreBodyAsync(body, messageId, now, singleDomain, cancellationToken);
        // What is stored, signature included: the length the body is read and sent with. The limit applies
        // to the submitted message; our own signature may take it a few hundred bytes beyond.
        var storedLength = stored?.BodySize ?? body.StoredLength + signature.Length;

        var requirement = stored?.TlsRequirement ?? RecipientRecordMapping.TlsRequirementColumn(request.RequireTls ? TlsRequirement.RequireTls : request.TlsRequiredNo || body.TlsRequiredNo ? TlsRequirement.TlsRequiredNo : TlsRequirement.Default);
        var smtpUtf8 = stored?.SmtpUtf8 ?? (body.HeadersHave8Bit || recipients.Any(r => r.IsInternational) || (sender?.IsInternational ?? false));
        // A resumed submission does not read the body: its tags are those the stored record has.
        var tags = stored is not null ? stored.Tags : body.Tags is { Count: > 0 } ? JsonSerializer.Serialize(body.Tags) : null;
        var submitted = new List<SubmittedRecipient>();
        foreach (var domain in recipients.OrderBy(suppressed.ContainsKey).GroupBy(r => r.Domain.ToString()))
        {
            // A hot domain's messages are spread over its shards; a resumed one goes where its first try put it.
            var partition = request.Resume?.StoredPartitions.GetValueOrDefault(domain.Key)
                ?? DomainPartition.Of(domain.Key, DomainPartition.ShardFor(messageId, HotDomains.ShardsOf(domain.Key)));
            // Queued recipients first: the first record (.0000) holds an inline body, and should be one that needs it.
            var records = domain.Select((recipient, index) => new RecipientRecord
            {
                PartitionKey = partition,
                RowKey = $"{messageId}.{index:D4}",
                MessageId = messageId,
                Sender = sender?.ToString() ?? string.Empty,
                Recipient = recipient.ToString(),
                Body = inline is null ? messageId : RecipientRecord.InlineBodyMarker,
                InlineBody = index == 0 ? inline : null,
                BodySize = storedLength,
                Has8Bit = stored?.Has8Bit ?? body.Has8Bit,
                SmtpUtf8 = smtpUtf8,
                TlsRequirement = requirement,
                IsDsn = request.IsDsn,
                IsTlsReport = request.IsTlsReport,
                Tags = tags,
                SubmittedAt = now,
                NextAttemptAt = now,
                Events = JsonSerializer.Serialize(new[] { new DeliveryEvent(now, "queued", $"accepted {storedLength} bytes") }),
            }).ToList();
            foreach (var (record, recipient) in records.Zip(domain))
            {
                if (suppressed.TryGetValue(recipient, out var match))
                {
                    Suppression.BounceSuppression.MarkSuppressed(record, match, now);
                }
            }
            submitted.AddRange(records.Zip(domain, (r, recipient) => suppressed.TryGetValue(recipient, out var match) ? new SubmittedRecipient(r.Recipient, r.Id, RecipientState.Suppressed, match.Reason) : new SubmittedRecipient(r.Recipient, r.Id)));
            if (request.Resume?.StoredPartitions.ContainsKey(domain.Key) == true)
            {
                continue;
            }
            // Submissions to the same partition arriving together share a table transaction (group commit);
            // this one returns when its records are stored.
            var write = EventOutbox.Prepare(Events, records, r => new TableTransactionAction(TableTransactionActionType.Add, r));
            await WriteNewRecordsAsync(partition, records, write.Actions, EstimatedBytes(records, inline) + write.EventBytes, cancellationToken);
            Events?.Written(write);
            if (records.Any(r => r.State == RecipientState.Queued))
            {
                await WakeForSubmissionAsync(partition, cancellationToken);
            }
        }
        return new SubmissionResult(messageId, storedLength, submitted);
    }

    /// <summary>
    /// Writes a submission's new records. When the storage client retried a transaction whose first try
    /// had committed but whose reply was lost (a timeout, a broken connection), the retry finds the records
    /// there and fails with 409 EntityAlreadyExists; the submitter would be told "failed" for a stored
    /// message and send it again. Row keys carry this submission's message id, fresh or reserved for it, so
    /// records under them can only be its own: when all of them are there, the write did succeed.
    /// </summary>
    private async Task WriteNewRecordsAsync(string partition, List<RecipientRecord> records, IReadOnlyList<TableTransactionAction> actions, int estimatedBytes, CancellationToken cancellationToken)
    {
        try
        {
            await storage.RecipientWrites.WriteAsync(partition, actions, estimatedBytes);
        }
        catch (RequestFailedException e) when (e.Status == 409)
        {
            if (!await AllStoredAsync(partition, records, cancellationToken))
            {
                throw;
            }
        }
    }

    private async Task<bool> AllStoredAsync(string partition, List<RecipientRecord> records, CancellationToken cancellationToken)
    {
        var messageId = records[0].MessageId;
        var expected = records.Select(r => r.RowKey).ToHashSet(StringComparer.Ordinal);
        // One query over the message's row-key range in this partition ("{messageId}.0000" … "{messageId}.9999").
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {partition} and RowKey ge {messageId + "."} and RowKey lt {messageId + "/"}");
        await foreach (var entity in storage.Recipients.QueryAsync<TableEntity>(filter, select: ["RowKey", "MessageId"], cancellationToken: cancellationToken))
        {
            if (entity.GetString("MessageId") == messageId)
            {
                expected.Remove(entity.RowKey);
            }
        }
        return expected.Count == 0;
    }

    /// <summary>
    /// Stores the normalised message: inline in the first record when small and for one domain, else in a
    /// blob; DKIM-signed when its From domain has a key.
    /// </summary>
    /// <returns>The DKIM-Signature field put in front (empty when unsigned) and the inline body, if any.</returns>
    private async Task<(byte[] Signature, byte[]? Inline)> StoreBodyAsync(SubmissionStream body, string messageId, DateTimeOffset submittedAt, bool singleDomain, CancellationToken cancellationToken)
    {
        // Up to one upload's worth is read into a pooled buffer that grows only as far as the message
        // goes: a 2 KiB message must not cost a zeroed 4 MiB array on every submission.
        var (head, headLength) = await ReadHeadAsync(body, SingleUploadLimit + 1, cancellationToken);
        try
        {
            if (headLength <= 2)
            {
                throw new SubmissionException(SubmissionError.EmptyMessage, "the message is empty");
            }
            // The DKIM signature (RFC 6376) goes in front of the normalised bytes and is computed over exactly
            // the bytes stored after it, which the engine later sends verbatim. Empty when not signed.
            byte[] signature = [];
            byte[]? inline = null;
            if (headLength <= SingleUploadLimit)
            {
                // The whole message is in memory: sign it there.
                signature = dkim?.Sign(head.AsMemory(0, headLength)) ?? [];
                var stored = signature.Length == 0 ? head.AsMemory(0, headLength) : (byte[])[.. signature, .. head.AsSpan(0, headLength)];
                if (stored.Length <= options.InlineBodyLimit && singleDomain)
                {
                    inline = stored.ToArray();
                }
                else
                {
                    await storage.Bodies.GetBlobClient(messageId).UploadAsync(new BinaryData(stored), UploadOptions(submittedAt), cancellationToken);
                }
            }
            else if (dkim?.KeyFor(head.AsMemory(0, headLength)) is not null)
            {
                // Too large to hold, and to be signed: the body hash needs all of it before the signature, which
                // goes first, can be written. Spool the normalised message to a temporary file (memory stays
                // flat), sign from there, then upload the signature followed by the file.
                await using var spool = new FileStream(
                    Path.Combine(Path.GetTempPath(), $"clouddelivery-{messageId}.eml"),
                    FileMode.CreateNew,
                    FileAccess.ReadWrite,
                    FileShare.None,
                    81920,
                    FileOptions.DeleteOnClose | FileOptions.Asynchronous);
                await spool.WriteAsync(head.AsMemory(0, headLength), cancellationToken);
                await body.CopyToAsync(spool, cancellationToken);
                await spool.FlushAsync(cancellationToken);
                signature = dkim.Sign(spool) ?? [];
                spool.Position = 0;
                using var whole = new ConcatenatedStream(new MemoryStream(signature, writable: false), spool);
                await storage.Bodies.GetBlobClient(messageId).UploadAsync(whole, UploadOptions(submittedAt), cancellationToken);
            }
            else
            {
                // Larger than one request: stream the rest behind what was read, in blocks.
                using var whole = new ConcatenatedStream(new MemoryStream(head, 0, headLength), body);
                await storage.Bodies.GetBlobClient(messageId).UploadAsync(whole, UploadOptions(submittedAt), cancellationToken);
            }
            return (signature, inline);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
        }
    }

    /// <summary>Reads a message no recipient will be sent (all suppressed) to its end, checking it as <see cref="StoreBodyAsync"/> does, and stores nothing.</summary>
    private static async Task<(byte[] Signature, byte[]? Inline)> ReadBodyOnlyAsync(SubmissionStream body, CancellationToken cancellationToken)
    {
        await body.CopyToAsync(Stream.Null, cancellationToken);
        return body.StoredLength <= 2 ? throw new SubmissionException(SubmissionError.EmptyMessage, "the message is empty") : ([], null);
    }

    /// <summary>Name of the body blob's metadata entry holding its message's submission time (our clock), for the purge.</summary>
    public const string SubmittedAtMetadata = "submittedat";

    /// <summary>
    /// Streamed in blocks one at a time (memory stays flat), tagged with the submission time so the purge
    /// compares times of one clock (see QueuePurger).
    /// </summary>
    private static BlobUploadOptions UploadOptions(DateTimeOffset submittedAt) => new()
    {
        TransferOptions = new global::Azure.Storage.StorageTransferOptions { MaximumConcurrency = 1 },
        Metadata = new Dictionary<string, string> { [SubmittedAtMetadata] = submittedAt.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture) },
    };

    /// <summary>Reads up to <paramref name="limit"/> bytes into a pooled array, renting larger ones only as the data needs.</summary>
    private static async Task<(byte[] Buffer, int Length)> ReadHeadAsync(Stream body, int limit, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(limit, 16 * 1024));
        var length = 0;
        try
        {
            while (true)
            {
                var read = await body.ReadAsync(buffer.AsMemory(length, Math.Min(buffer.Length, limit) - length), cancellationToken);
                if (read == 0)
                {
                    return (buffer, length);
                }
                length += read;
                if (length == limit)
                {
                    return (buffer, length);
                }
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(limit, buffer.Length * 4));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>
    /// Wakes the domain for newly written records. The first submission to a domain wakes it at once, so a
    /// lone message goes out without delay; further submissions within <see cref="OutboundQueueOptions.WakeUpWindow"/>
    /// share one trailing wake-up that becomes visible when the window ends, after their records are
    /// written, so its run finds them all. Bursts cost two wake-ups per window instead of one per message.
    /// </summary>
    private async Task WakeForSubmissionAsync(string domain, CancellationToken cancellationToken)
    {
        if (options.WakeUpWindow <= TimeSpan.Zero)
        {
            await WakeAsync(domain, TimeSpan.Zero, cancellationToken);
            return;
        }
        var now = clock.GetUtcNow();
        var window = wakeUpWindows.GetOrAdd(domain, _ => new WakeUpWindowState());
        TimeSpan? delay;
        lock (window)
        {
            if (now >= window.End)
            {
                // While a burst goes on (this window starts within one window of the last one's end), the
                // domain is being served every window anyway: wake it once, at this window's end, instead of
                // at once and again at the end. Only the first message after a pause is woken for at once.
                var burstContinues = window.End != default && now - window.End < options.WakeUpWindow;
                window.End = now + options.WakeUpWindow;
                window.TrailingScheduled = burstContinues;
                delay = burstContinues ? options.WakeUpWindow : TimeSpan.Zero;
            }
            else if (!window.TrailingScheduled)
            {
                window.TrailingScheduled = true;
                delay = window.End - now;
            }
            else
            {
                delay = null;
            }
        }
        if (delay is { } visibleAfter)
        {
            await WakeAsync(domain, visibleAfter, cancellationToken);
        }
    }

    private sealed class WakeUpWindowState
    {
        public DateTimeOffset End { get; set; }

        public bool TrailingScheduled { get; set; }
    }

    /// <summary>Enqueues a wake-up for <paramref name="domain"/>, visible after <paramref name="delay"/> (at most 7 days).</summary>
    public async Task WakeAsync(string domain, TimeSpan delay, CancellationToken cancellationToken)
    {
        // Queue storage takes the visibility timeout in whole seconds, and the client truncates: a wake-up
        // asked for in 1.9 s would come after 1 s. Early is wrong here: a window's trailing wake-up would run
        // before the window's last submissions, and a retry's before its records are due; both runs find
        // nothing, send no further wake-up, and the records wait for the sweeper. Round up: up to a second
        // late, never early.
        var visibility = delay <= TimeSpan.Zero ? (TimeSpan?)null : delay > TimeSpan.FromDays(7) ? TimeSpan.FromDays(7) : TimeSpan.FromSeconds(Math.Ceiling(delay.TotalSeconds));
        await storage.WakeUps.SendMessageAsync(new WakeUp(domain).ToJson(), visibility, TimeSpan.FromSeconds(-1), cancellationToken);
        WakeUpSent.Notify(clock.GetUtcNow() + (visibility ?? TimeSpan.Zero));
    }

    /// <summary>Records of <paramref name="partition"/> (a domain or one of its shards) due for an attempt now, at most <paramref name="limit"/>, in row key (submission) order.</summary>
    public async Task<List<RecipientRecord>> ReadyAsync(string partition, CancellationToken cancellationToken, int limit = int.MaxValue)
    {
        var now = clock.GetUtcNow();
        // The string form: the expression form compiles a delegate for every captured value, every run.
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {partition} and State eq {RecipientState.Queued} and NextAttemptAt le {now}");
        var list = new List<RecipientRecord>();
        await foreach (var record in storage.Recipients.QueryAsync<RecipientRecord>(filter, maxPerPage: Math.Min(limit, 1000), cancellationToken: cancellationToken))
        {
            if (record.RowKey != RecipientRecord.LeaseRowKey)
            {
                list.Add(record);
                if (list.Count >= limit)
                {
                    break;
                }
            }
        }
        return list;
    }

    /// <summary>
    /// Writes the records' state back (attempts, results, state, events) and returns once it is stored.
    /// Writes of parallel sessions to a domain share transactions (see <see cref="PartitionWriteBatcher"/>).
    /// Not cancellable: an outcome is recorded even while the host shuts down, before the lease goes.
    /// </summary>
    /// <param name="records">The records; each appended one transition to its event log since it was read or last saved.</param>
    /// <param name="results">The delivery results behind the transitions, when a delivery made them (for their events).</param>
    public async Task SaveAsync(IReadOnlyList<RecipientRecord> records, IReadOnlyList<(RecipientRecord Record, RecipientResult Result)>? results = null)
    {
        // Merges of the changed fields only (RecipientRecord.ToStateEntity): an outcome write is one per
        // delivered message, the most frequent write there is, and should not carry the body again.
        foreach (var partition in records.GroupBy(r => r.PartitionKey))
        {
            var write = EventOutbox.Prepare(Events, partition, r => new TableTransactionAction(TableTransactionActionType.UpdateMerge, r.ToStateEntity(), ETag.All), results);
            await storage.RecipientWrites.WriteAsync(partition.Key, write.Actions, (partition.Count() * OutcomeBytes) + write.EventBytes);
            Events?.Written(write);
        }
    }

    /// <summary>About what an outcome merge takes in a transaction: state fields, last reply and the event log.</summary>
    private const int OutcomeBytes = 8 * 1024;

    /// <summary>About what new records take in a transaction: fields, the event, and the inline body in base64.</summary>
    private static int EstimatedBytes(List<RecipientRecord> records, byte[]? inline) => (records.Count * 2 * 1024) + ((inline?.Length ?? 0) * 4 / 3);

    /// <summary>
    /// The body of <paramref name="record"/>: from its blob, or inline from the message's first record
    /// (taken from <paramref name="loaded"/> when it is there, else read).
    /// </summary>
    public async Task<MessageBody> BodyOfAsync(RecipientRecord record, IEnumerable<RecipientRecord> loaded, CancellationToken cancellationToken)
    {
        if (record.Body != RecipientRecord.InlineBodyMarker)
        {
            return new BlobMessageBody(storage.Bodies.GetBlobClient(record.Body), record.BodySize);
        }
        var holder = loaded.FirstOrDefault(r => r.MessageId == record.MessageId && r.InlineBody is not null)
            ?? await FindAsync($"{record.PartitionKey}/{record.MessageId}.0000", cancellationToken);
        return holder?.InlineBody is { } bytes
            ? MessageBody.FromBytes(bytes)
            : throw new InvalidOperationException($"the inline body of message {record.MessageId} is missing");
    }

    /// <summary>Finds a record by its id ("{domain}/{rowKey}").</summary>
    public async Task<RecipientRecord?> FindAsync(string id, CancellationToken cancellationToken)
    {
        if (!IsRecipientId(id))
        {
            return null;
        }
        var slash = id.IndexOf('/', StringComparison.Ordinal);
        var response = await storage.Recipients.GetEntityIfExistsAsync<RecipientRecord>(id[..slash], id[(slash + 1)..], cancellationToken: cancellationToken);
        return response.HasValue ? response.Value : null;
    }

    /// <summary>All records of a message, across domains (a scan; for operators).</summary>
    public async Task<List<RecipientRecord>> FindMessageAsync(string messageId, CancellationToken cancellationToken)
    {
        var list = new List<RecipientRecord>();
        if (!IsMessageId(messageId))
        {
            return list;
        }
        await foreach (var record in storage.Recipients.QueryAsync<RecipientRecord>(TableClient.CreateQueryFilter($"MessageId eq {messageId}"), cancellationToken: cancellationToken))
        {
            list.Add(record);
        }
        return list;
    }

    /// <summary>Distinct partitions (domains and shards of domains) with records due before <paramref name="before"/>, for the sweeper.</summary>
    public async Task<IReadOnlyCollection<string>> DomainsDueAsync(DateTimeOffset before, CancellationToken cancellationToken)
    {
        var domains = new HashSet<string>(StringComparer.Ordinal);
        var filter = TableClient.CreateQueryFilter($"State eq {RecipientState.Queued} and NextAttemptAt le {before}");
        await foreach (var record in storage.Recipients.QueryAsync<RecipientRecord>(filter, select: ["PartitionKey"], cancellationToken: cancellationToken))
        {
            domains.Add(record.PartitionKey);
        }
        return domains;
    }

    /// <summary>The recipient domains a submission to <paramref name="recipients"/> writes, in the order it writes them (each to one of its partitions).</summary>
    /// <exception cref="SubmissionException">A recipient is invalid.</exception>
    public static IReadOnlyList<string> DomainsOf(IReadOnlyList<string> recipients) =>
        recipients.Select(r => ParseAddress(r, SubmissionError.InvalidRecipient, "recipient")).Distinct().Select(r => r.Domain.ToString()).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>
    /// The one address grammar (<see cref="EmailAddress.TryParse"/>) for every submission, so whatever is
    /// stored can be sent; one pair of angle brackets, as in an SMTP path, is allowed around it.
    /// </summary>
    private static EmailAddress ParseAddress(string? text, SubmissionError error, string what)
    {
        if (text is null)
        {
            throw new SubmissionException(error, $"a {what} is missing (null)");
        }
        var bare = text.Length >= 2 && text[0] == '<' && text[^1] == '>' ? text[1..^1] : text;
        return EmailAddress.TryParse(bare, out var address, out var reason) ? address : throw new SubmissionException(error, $"invalid {what} {text}: {reason}");
    }

    /// <summary>
    /// True for an id <see cref="FindAsync"/> can look up: "{partition}/{messageId}.{index}" as submissions make
    /// them, the partition being the domain or a shard of it ("gmail.com~2", see <see cref="DomainPartition"/>). Anything else is not found without asking storage, which would refuse keys with "/", "\", "#",
    /// "?" or control characters, or longer than 1 KiB, with an error rather than "no such entity".
    /// </summary>
    public static bool IsRecipientId(string? id)
    {
        var slash = id?.IndexOf('/', StringComparison.Ordinal) ?? -1;
        if (slash <= 0)
        {
            return false;
        }
        var partition = id![..slash];
        var row = id[(slash + 1)..];
        return row.Length == 37 && row[32] == '.' && IsMessageId(row[..32]) && row[33..].All(char.IsAsciiDigit)
            && DomainPartition.TryParse(partition, out var domain, out _) && NextHop.TryParse(domain, out var hop, out _) && hop.ToString() == domain;
    }

    /// <summary>True for a message id as submissions make them: 32 lower-case hex digits.</summary>
    public static bool IsMessageId(string? id) => id is { Length: 32 } && id.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');
}
