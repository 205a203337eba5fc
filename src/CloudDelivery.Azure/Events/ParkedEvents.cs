using System.Globalization;
using System.Text;
using Azure;
using Azure.Data.Tables;

namespace CloudDelivery.Azure.Events;

/// <summary>An event a sink did not take within the retention, as an operator sees it.</summary>
public sealed record ParkedEvent(string Sink, string Id, string Partition, string OutboxRowKey, string SenderDomain, DateTimeOffset CreatedAt, DateTimeOffset ParkedAt, string Json);

/// <summary>
/// Events parked per sink (table Storage:ParkedEventsTable, partition = sink, row = event id): kept until
/// an operator replays them, which moves them back into the outbox, restricted to that sink.
/// </summary>
public sealed class ParkedEvents(TableClient table, TableClient recipients, TimeProvider time)
{
    /// <summary>Parks <paramref name="entries"/> for <paramref name="sink"/>: one transaction per 100 (one partition per sink).</summary>
    public async Task ParkAsync(string sink, IReadOnlyList<OutboxEntry> entries, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var partition = EscapeKey(sink);
        foreach (var chunk in entries.Chunk(100))
        {
            var actions = chunk.Select(e => new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(partition, EscapeKey(e.Event.Id))
            {
                ["Sink"] = sink,
                ["EventId"] = e.Event.Id,
                ["Partition"] = e.Partition,
                ["OutboxRowKey"] = e.RowKey,
                [EventOutbox.SenderDomainColumn] = e.Event.SenderDomain,
                [EventOutbox.CreatedAtColumn] = e.CreatedAt,
                ["ParkedAt"] = now,
                [EventOutbox.EventColumn] = Encoding.UTF8.GetString(e.Event.Json.Span),
            })).ToList();
            await table.SubmitTransactionAsync(actions, cancellationToken);
        }
    }

    /// <summary>Parked events, of <paramref name="sink"/> only when given.</summary>
    public async IAsyncEnumerable<ParkedEvent> ListAsync(string? sink, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var filter = sink is null ? null : TableClient.CreateQueryFilter($"PartitionKey eq {EscapeKey(sink)}");
        await foreach (var entity in table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            yield return new ParkedEvent(
                entity.GetString("Sink") ?? entity.PartitionKey,
                entity.GetString("EventId") ?? entity.RowKey,
                entity.GetString("Partition") ?? string.Empty,
                entity.GetString("OutboxRowKey") ?? string.Empty,
                entity.GetString(EventOutbox.SenderDomainColumn) ?? string.Empty,
                entity.GetDateTimeOffset(EventOutbox.CreatedAtColumn) ?? default,
                entity.GetDateTimeOffset("ParkedAt") ?? default,
                entity.GetString(EventOutbox.EventColumn) ?? string.Empty);
        }
    }

    /// <summary>
    /// Moves parked events (of <paramref name="sink"/> only when given) back into the outbox, each as a row
    /// in its original partition restricted to the sink that parked it, then deletes the parked row. A
    /// dispatcher's sweep picks them up (after Events:AdoptAfter).
    /// </summary>
    /// <returns>Events replayed.</returns>
    public async Task<int> ReplayAsync(string? sink, CancellationToken cancellationToken)
    {
        var replayed = 0;
        var now = time.GetUtcNow();
        await foreach (var parked in ListAsync(sink, cancellationToken))
        {
            if (parked.Partition.Length == 0 || !parked.OutboxRowKey.StartsWith(EventOutbox.RowKeyPrefix, StringComparison.Ordinal))
            {
                continue; // not a row this service wrote: left for the operator to look at
            }
            var entry = new OutboxEntry(
                parked.Partition,
                // A row of its own beside the original (which other sinks may still hold), in the outbox's range.
                $"{parked.OutboxRowKey}.{EscapeKey(parked.Sink)}",
                new OutboxEvent(parked.Id, parked.SenderDomain, Encoding.UTF8.GetBytes(parked.Json)),
                now,
                parked.Sink);
            await recipients.UpsertEntityAsync(EventOutbox.ToEntity(entry), TableUpdateMode.Replace, cancellationToken);
            await table.DeleteEntityAsync(EscapeKey(parked.Sink), EscapeKey(parked.Id), ETag.All, cancellationToken);
            replayed++;
        }
        return replayed;
    }

    /// <summary>
    /// A Table key for any string: '/', '\', '#', '?' and control characters, which keys may not hold, and
    /// '%' itself are percent-escaped (UTF-8 bytes), so distinct strings stay distinct keys.
    /// </summary>
    public static string EscapeKey(string value)
    {
        var builder = new StringBuilder(value.Length);
        Span<byte> bytes = stackalloc byte[4];
        foreach (var rune in value.EnumerateRunes())
        {
            if (rune.Value is '/' or '\\' or '#' or '?' or '%' || Rune.IsControl(rune))
            {
                var length = rune.EncodeToUtf8(bytes);
                foreach (var b in bytes[..length])
                {
                    builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
                }
            }
            else
            {
                builder.Append(rune.ToString());
            }
        }
        return builder.ToString();
    }
}
