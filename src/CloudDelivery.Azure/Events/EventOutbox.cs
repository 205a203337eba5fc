using Azure.Data.Tables;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Delivery;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// An event waiting in the outbox: the row that holds it (in the recipient's partition), the event, when
/// it was written (our clock), and the sinks it is restricted to (a replay; null: every sink that wants it).
/// </summary>
public sealed record OutboxEntry(string Partition, string RowKey, OutboxEvent Event, DateTimeOffset CreatedAt, string? Sinks = null)
{
    /// <summary>The sinks named in <see cref="Sinks"/>, or null for all.</summary>
    public IReadOnlyList<string>? SinkNames => Sinks is null ? null : Sinks.Split(',', StringSplitOptions.RemoveEmptyEntries);
}

/// <summary>What a record write stores: the records' actions with each one's outbox row right after it, and the events.</summary>
public sealed record OutboxWrite(List<TableTransactionAction> Actions, List<OutboxEntry> Entries, int EventBytes);

/// <summary>
/// The durable outbox of recipient events: each record write that appends a transition to a record's event
/// log also writes the transition's event, as a row beside the record (same table, same partition) in the
/// same entity group transaction, so an event exists if and only if its transition was stored. The
/// dispatcher publishes the rows and deletes them; rows sort after records and before the domain's lease.
/// </summary>
public sealed class EventOutbox(RecipientEvents events, TimeProvider time, EventDispatcher? dispatcher = null)
{
    /// <summary>Row keys of outbox rows start with this: after records' (hex digits) and before "~lease".</summary>
    public const string RowKeyPrefix = "~event.";

    /// <summary>The first row key after every outbox row ('/' follows '.').</summary>
    public const string RowKeyEnd = "~event/";

    /// <summary>Column names. None is called State, MessageId or NextAttemptAt: queries over records never match outbox rows.</summary>
    public const string EventColumn = "Event";

    public const string SenderDomainColumn = "SenderDomain";

    public const string CreatedAtColumn = "CreatedAt";

    public const string SinksColumn = "Sinks";

    /// <summary>About what an outbox row takes in a transaction.</summary>
    private const int RowBytes = 2 * 1024;

    /// <summary>The filter of every outbox row of the recipients table.</summary>
    public static string RowFilter => TableClient.CreateQueryFilter($"RowKey ge {RowKeyPrefix} and RowKey lt {RowKeyEnd}");

    public RecipientEvents Events => events;

    /// <summary>
    /// The actions that store <paramref name="records"/> (each made by <paramref name="recordAction"/>) and,
    /// with an outbox, the event of each one's latest transition right after it. Pairs come first and
    /// records never come alone, so a list longer than a transaction, cut every 100 actions, never parts a
    /// record from its event (see <see cref="Storage.PartitionWriteBatcher"/>).
    /// </summary>
    /// <param name="outbox">Null when no sink is configured: no event rows at all.</param>
    /// <param name="records">The records written, all of one partition.</param>
    /// <param name="recordAction">The action that writes a record (an add at submission, a merge after a transition).</param>
    /// <param name="results">The delivery results that caused the transitions, when a delivery did.</param>
    public static OutboxWrite Prepare(EventOutbox? outbox, IEnumerable<RecipientRecord> records, Func<RecipientRecord, TableTransactionAction> recordAction, IReadOnlyList<(RecipientRecord Record, RecipientResult Result)>? results = null)
    {
        var actions = new List<TableTransactionAction>();
        var entries = new List<OutboxEntry>();
        if (outbox is null)
        {
            actions.AddRange(records.Select(recordAction));
            return new OutboxWrite(actions, entries, 0);
        }
        var now = outbox.Clock.GetUtcNow();
        foreach (var record in records)
        {
            var result = results?.FirstOrDefault(r => ReferenceEquals(r.Record, record)).Result;
            var entry = outbox.EntryFor(record, result, now);
            actions.Add(recordAction(record));
            actions.Add(new TableTransactionAction(TableTransactionActionType.UpsertReplace, ToEntity(entry)));
            entries.Add(entry);
        }
        return new OutboxWrite(actions, entries, entries.Count * RowBytes);
    }

    private TimeProvider Clock => time;

    /// <summary>Hands the events of a stored write to this process's dispatcher, if it runs one (the sweep finds them otherwise).</summary>
    public void Written(OutboxWrite write)
    {
        if (dispatcher is null)
        {
            return;
        }
        foreach (var entry in write.Entries)
        {
            dispatcher.Offer(entry);
        }
    }

    /// <summary>The outbox entry of <paramref name="record"/>'s latest transition.</summary>
    public OutboxEntry EntryFor(RecipientRecord record, RecipientResult? result, DateTimeOffset now)
    {
        var built = events.Build(record, result);
        // The row key follows the record's and adds the transition's sequence: unique per transition, the
        // same when a write is repeated (an upsert then), and in sequence order within a recipient.
        var sequence = built.Id[(built.Id.LastIndexOf(':') + 1)..];
        return new OutboxEntry(record.PartitionKey, $"{RowKeyPrefix}{record.RowKey}.{sequence}", built, now);
    }

    /// <summary>The outbox row of <paramref name="entry"/>.</summary>
    public static TableEntity ToEntity(OutboxEntry entry)
    {
        var entity = new TableEntity(entry.Partition, entry.RowKey)
        {
            [EventColumn] = System.Text.Encoding.UTF8.GetString(entry.Event.Json.Span),
            [SenderDomainColumn] = entry.Event.SenderDomain,
            [CreatedAtColumn] = entry.CreatedAt,
        };
        if (entry.Sinks is not null)
        {
            entity[SinksColumn] = entry.Sinks;
        }
        return entity;
    }

    /// <summary>The entry an outbox row holds; null for a row that is not one (a malformed or foreign row).</summary>
    public static OutboxEntry? FromEntity(TableEntity entity)
    {
        if (entity.GetString(EventColumn) is not { } json || !entity.RowKey.StartsWith(RowKeyPrefix, StringComparison.Ordinal))
        {
            return null;
        }
        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
        string? id;
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(bytes);
            id = document.RootElement.TryGetProperty("id", out var value) ? value.GetString() : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
        if (id is null)
        {
            return null;
        }
        var createdAt = entity.GetDateTimeOffset(CreatedAtColumn) ?? entity.Timestamp ?? DateTimeOffset.MinValue;
        return new OutboxEntry(entity.PartitionKey, entity.RowKey, new OutboxEvent(id, entity.GetString(SenderDomainColumn) ?? string.Empty, bytes), createdAt, entity.GetString(SinksColumn));
    }
}
