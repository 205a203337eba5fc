using System.Globalization;
using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Azure.TlsRpt;

/// <summary>One policy's counts for a recipient domain and day, as stored (and as <c>tlsrpt show</c> prints them).</summary>
/// <param name="RecipientDomain">The recipient domain whose delivery applied the policy.</param>
/// <param name="IsHost">The policy is an MX host's (DANE or none), not the recipient domain's (MTA-STS or none).</param>
/// <param name="Result">The policy, session counts and failure details.</param>
public sealed record StoredTlsRptResult(string RecipientDomain, bool IsHost, TlsRptResult Result);

/// <summary>Where a day's report for one policy domain has gone, and whether nothing is left to do for it.</summary>
public sealed record TlsRptSendMark(IReadOnlyCollection<string> Destinations, bool Complete);

/// <summary>
/// Aggregates the engine's TLSRPT results per UTC day and recipient domain in Table Storage (RFC 8460 §4:
/// reports cover one day). One entity per day and recipient domain holds that domain's policies with
/// their counts and merged failure details; writers merge into it under an ETag condition and retry when
/// another instance wrote first, so parallel function instances never lose an update. Partitions are days,
/// so a day's report run reads one partition and old days are dropped whole.
/// </summary>
public sealed class TlsRptResultStore(TableClient table, TimeProvider? time = null)
{
    /// <summary>Failure-detail entries kept per policy and day; further distinct ones only add to the counts.</summary>
    public const int MaxFailureDetails = 100;

    /// <summary>Row keys of send marks start with this (after every domain name).</summary>
    private const string SentPrefix = "~sent~";

    // A string property holds at most 64 KiB (32 K UTF-16 characters); stay clear of it.
    private const int MaxResultsJsonChars = 30_000;

    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = false };

    private readonly TimeProvider clock = time ?? TimeProvider.System;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Day, string Domain), WrittenEntity> lastWritten = new();

    public TableClient Table => table;

    /// <summary>The partition key of a day.</summary>
    public static string DayKey(DateOnly day) => day.ToString("yyyyMMdd", CultureInfo.InvariantCulture);

    /// <summary>
    /// Adds one delivery run's results for <paramref name="recipientDomain"/> to today's (UTC) totals.
    /// Retries on a concurrent write; gives up only after many conflicts in a row.
    /// </summary>
    public async Task RecordAsync(string recipientDomain, TlsRptResult? domainResult, IEnumerable<TlsRptResult> hostResults, CancellationToken cancellationToken)
    {
        var additions = new List<(bool IsHost, TlsRptResult Result)>();
        if (domainResult is not null)
        {
            additions.Add((false, domainResult));
        }
        additions.AddRange(hostResults.Select(r => (true, r)));
        if (additions.Count == 0)
        {
            return;
        }
        var day = DayKey(DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime));
        for (var attempt = 0; ; attempt++)
        {
            // What this instance wrote last for the entity, if nobody wrote since, saves reading it back:
            // one conditional write per run instead of a read and a write (a 412 means re-read and merge).
            var cached = attempt == 0 && lastWritten.TryGetValue((day, recipientDomain), out var known) ? known : null;
            List<Entry> stored;
            ETag? etag;
            if (cached is not null)
            {
                stored = Parse(cached.Json);
                etag = cached.ETag;
            }
            else
            {
                var existing = await table.GetEntityIfExistsAsync<TableEntity>(day, recipientDomain, cancellationToken: cancellationToken);
                stored = existing.HasValue ? Parse(existing.Value!.GetString("Results")) : [];
                etag = existing.HasValue ? existing.Value!.ETag : null;
            }
            foreach (var (isHost, result) in additions)
            {
                var same = stored.Find(s => s.IsHost == isHost && s.Result.Policy.SameAs(result.Policy));
                if (same is null)
                {
                    stored.Add(same = new Entry(isHost, new TlsRptResult(result.Policy)));
                }
                same.Result.Merge(result);
                Trim(same.Result);
            }
            var json = Serialize(stored);
            var entity = new TableEntity(day, recipientDomain) { ["Results"] = json };
            try
            {
                var response = etag is { } match
                    ? await table.UpdateEntityAsync(entity, match, TableUpdateMode.Replace, cancellationToken)
                    : await table.AddEntityAsync(entity, cancellationToken);
                if (response.Headers.ETag is { } written)
                {
                    if (lastWritten.Count > 10_000)
                    {
                        lastWritten.Clear();
                    }
                    lastWritten[(day, recipientDomain)] = new WrittenEntity(written, json);
                }
                return;
            }
            catch (RequestFailedException e) when (e.Status is 404 or 409 or 412 && attempt < 20)
            {
                // Another instance wrote first (or the entity went away): read its totals and merge again.
                lastWritten.TryRemove((day, recipientDomain), out _);
                if (cached is null)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(5, 20 + (attempt * 10))), cancellationToken);
                }
            }
        }
    }

    /// <summary>All results of <paramref name="day"/>, per recipient domain.</summary>
    public async Task<IReadOnlyList<StoredTlsRptResult>> ListAsync(DateOnly day, CancellationToken cancellationToken)
    {
        var results = new List<StoredTlsRptResult>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {DayKey(day)} and RowKey lt {SentPrefix}");
        await foreach (var entity in table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            results.AddRange(Parse(entity.GetString("Results")).Select(e => new StoredTlsRptResult(entity.RowKey, e.IsHost, e.Result)));
        }
        return results;
    }

    /// <summary>The days that have results and are before <paramref name="before"/>, oldest first.</summary>
    public async Task<IReadOnlyList<DateOnly>> DaysBeforeAsync(DateOnly before, CancellationToken cancellationToken)
    {
        var days = new SortedSet<DateOnly>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey lt {DayKey(before)}");
        await foreach (var entity in table.QueryAsync<TableEntity>(filter, select: ["PartitionKey"], cancellationToken: cancellationToken))
        {
            if (DateOnly.TryParseExact(entity.PartitionKey, "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
            {
                days.Add(day);
            }
        }
        return [.. days];
    }

    /// <summary>The send marks of <paramref name="day"/>'s reports, per policy domain.</summary>
    public async Task<IReadOnlyDictionary<string, TlsRptSendMark>> MarksAsync(DateOnly day, CancellationToken cancellationToken)
    {
        var marks = new Dictionary<string, TlsRptSendMark>(StringComparer.Ordinal);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {DayKey(day)} and RowKey ge {SentPrefix}");
        await foreach (var entity in table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            var destinations = (entity.GetString("Destinations") ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            marks[entity.RowKey[SentPrefix.Length..]] = new TlsRptSendMark(destinations, entity.GetBoolean("Complete") ?? false);
        }
        return marks;
    }

    /// <summary>
    /// Notes where a day's report about <paramref name="policyDomain"/> went (all destinations so far) and
    /// whether it is done, so later runs skip it or retry only what failed.
    /// </summary>
    public Task MarkSentAsync(DateOnly day, string policyDomain, TlsRptSendMark mark, CancellationToken cancellationToken) =>
        table.UpsertEntityAsync(new TableEntity(DayKey(day), SentPrefix + policyDomain) { ["Destinations"] = string.Join(' ', mark.Destinations), ["Complete"] = mark.Complete }, TableUpdateMode.Replace, cancellationToken);

    /// <summary>Deletes everything of <paramref name="day"/> (results and marks).</summary>
    public async Task DeleteDayAsync(DateOnly day, CancellationToken cancellationToken)
    {
        var rows = new List<TableEntity>();
        await foreach (var entity in table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {DayKey(day)}"), select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
        {
            rows.Add(entity);
        }
        foreach (var chunk in rows.Chunk(100))
        {
            await table.SubmitTransactionAsync(chunk.Select(e => new TableTransactionAction(TableTransactionActionType.Delete, e, ETag.All)), cancellationToken);
        }
    }

    private static void Trim(TlsRptResult result)
    {
        if (result.FailureDetails.Count > MaxFailureDetails)
        {
            // Keep the most frequent failures; the summary counts stay exact.
            var keep = result.FailureDetails.OrderByDescending(d => d.FailedSessionCount).Take(MaxFailureDetails).ToList();
            result.FailureDetails.Clear();
            result.FailureDetails.AddRange(keep);
        }
    }

    private static string Serialize(List<Entry> entries)
    {
        var json = JsonSerializer.Serialize(entries.Select(Stored.From), Json);
        while (json.Length > MaxResultsJsonChars && entries.Any(e => e.Result.FailureDetails.Count > 1))
        {
            // Still too large for one property: drop the rarest details of the largest lists.
            var largest = entries.MaxBy(e => e.Result.FailureDetails.Count)!.Result.FailureDetails;
            largest.RemoveRange(largest.Count / 2, largest.Count - (largest.Count / 2));
            json = JsonSerializer.Serialize(entries.Select(Stored.From), Json);
        }
        return json;
    }

    private static List<Entry> Parse(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return [];
        }
        var stored = JsonSerializer.Deserialize<List<Stored>>(json, Json) ?? [];
        return stored.Select(s =>
        {
            var result = new TlsRptResult(s.Policy);
            result.AddTotals(s.Successes, s.Failures, s.Details);
            return new Entry(s.Host, result);
        }).ToList();
    }

    private sealed record Entry(bool IsHost, TlsRptResult Result);

    private sealed record WrittenEntity(ETag ETag, string Json);

    private sealed record Stored(bool Host, TlsRptPolicy Policy, long Successes, long Failures, List<TlsRptFailureDetails> Details)
    {
        public static Stored From(Entry entry) => new(entry.IsHost, entry.Result.Policy, entry.Result.Summary.TotalSuccessfulSessionCount, entry.Result.Summary.TotalFailureSessionCount, entry.Result.FailureDetails);
    }
}
