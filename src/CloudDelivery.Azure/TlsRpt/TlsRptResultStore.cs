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

    /// <summary>Results added by <see cref="AddAsync"/> and not yet written, per day and recipient domain.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Day, string Domain), List<Entry>> pending = new();

    /// <summary>
    /// How long <see cref="AddAsync"/> keeps a domain's results in memory before <see cref="FlushAsync"/> writes
    /// them (TlsRpt:ResultsFlushInterval; the hosts' flush loop runs at this interval and once at shutdown).
    /// Zero writes every run's results at once. A run costs a write of the day's entity otherwise: with many
    /// short runs per domain that is one of the largest per-message storage costs, for counts that are read
    /// once a day (RFC 8460 §4.1: a report covers a UTC day).
    /// </summary>
    public TimeSpan FlushInterval { get; init; }

    /// <summary>
    /// Adds one delivery run's results for <paramref name="recipientDomain"/> to today's (UTC) totals: in
    /// memory until the next <see cref="FlushAsync"/> when <see cref="FlushInterval"/> is set, else written at
    /// once (<see cref="RecordAsync"/>). What a crash loses is at most one interval of counts: statistics,
    /// never a delivery.
    /// </summary>
    public async Task AddAsync(string recipientDomain, TlsRptResult? domainResult, IEnumerable<TlsRptResult> hostResults, CancellationToken cancellationToken)
    {
        if (FlushInterval <= TimeSpan.Zero)
        {
            await RecordAsync(recipientDomain, domainResult, hostResults, cancellationToken);
            return;
        }
        var additions = Additions(domainResult, hostResults);
        if (additions.Count == 0)
        {
            return;
        }
        var key = (DayKey(DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime)), recipientDomain);
        while (true)
        {
            var entries = pending.GetOrAdd(key, _ => []);
            lock (entries)
            {
                // A list a flush has taken out is no longer pending: add to a new one.
                if (pending.TryGetValue(key, out var current) && ReferenceEquals(current, entries))
                {
                    MergeInto(entries, additions);
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Writes every pending domain's results (one conditional write per day and domain). Results whose
    /// write fails go back to pending and the first failure is thrown once the rest are written, so the
    /// flush loop logs it and tries again at its next round.
    /// </summary>
    /// <returns>The entities written.</returns>
    public async Task<int> FlushAsync(CancellationToken cancellationToken)
    {
        var written = 0;
        Exception? failure = null;
        foreach (var key in pending.Keys)
        {
            if (!pending.TryRemove(key, out var entries))
            {
                continue;
            }
            List<(bool IsHost, TlsRptResult Result)> additions;
            lock (entries)
            {
                additions = entries.Select(e => (e.IsHost, e.Result)).ToList();
            }
            try
            {
                await WriteAsync(key.Day, key.Domain, additions, cancellationToken);
                written++;
            }
            catch (Exception e) when (e is RequestFailedException or OperationCanceledException or IOException)
            {
                var back = pending.GetOrAdd(key, _ => []);
                lock (back)
                {
                    MergeInto(back, additions);
                }
                failure ??= e;
            }
        }
        if (failure is not null)
        {
            throw failure is OperationCanceledException ? failure : new IOException($"writing TLSRPT results failed; kept for the next flush: {failure.Message}", failure);
        }
        return written;
    }

    /// <summary>Results waiting for <see cref="FlushAsync"/> (day and recipient domain pairs).</summary>
    public int PendingCount => pending.Count;

    /// <summary>
    /// Adds one delivery run's results for <paramref name="recipientDomain"/> to today's (UTC) totals, written
    /// now. Retries on a concurrent write; gives up only after many conflicts in a row.
    /// </summary>
    public Task RecordAsync(string recipientDomain, TlsRptResult? domainResult, IEnumerable<TlsRptResult> hostResults, CancellationToken cancellationToken)
    {
        var additions = Additions(domainResult, hostResults);
        return additions.Count == 0 ? Task.CompletedTask : WriteAsync(DayKey(DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime)), recipientDomain, additions, cancellationToken);
    }

    private static List<(bool IsHost, TlsRptResult Result)> Additions(TlsRptResult? domainResult, IEnumerable<TlsRptResult> hostResults)
    {
        var additions = new List<(bool IsHost, TlsRptResult Result)>();
        if (domainResult is not null)
        {
            additions.Add((false, domainResult));
        }
        additions.AddRange(hostResults.Select(r => (true, r)));
        return additions;
    }

    /// <summary>Adds <paramref name="additions"/> to <paramref name="entries"/>, one entry per policy (copies: the engine's results are not kept).</summary>
    private static void MergeInto(List<Entry> entries, IEnumerable<(bool IsHost, TlsRptResult Result)> additions)
    {
        foreach (var (isHost, result) in additions)
        {
            var same = entries.Find(s => s.IsHost == isHost && s.Result.Policy.SameAs(result.Policy));
            if (same is null)
            {
                entries.Add(same = new Entry(isHost, new TlsRptResult(result.Policy)));
            }
            same.Result.Merge(result);
            Trim(same.Result);
        }
    }

    private async Task WriteAsync(string day, string recipientDomain, List<(bool IsHost, TlsRptResult Result)> additions, CancellationToken cancellationToken)
    {
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
            MergeInto(stored, additions);
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
