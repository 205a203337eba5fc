using System.Runtime.CompilerServices;
using Azure.Data.Tables;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Smtp;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Azure.Queue;

/// <summary>What an operator does to recipients: the verbs of <c>clouddelivery queue</c>, as postsuper(1) and mox's queue commands have them.</summary>
public enum OperatorAction
{
    /// <summary>Queued → held: not attempted until released.</summary>
    Hold,

    /// <summary>Held → queued, due now.</summary>
    Release,

    /// <summary>Queued, due now (the retry schedule's wait is skipped; attempts count as before).</summary>
    Retry,

    /// <summary>Queued or held → failed, with a DSN to the sender.</summary>
    Fail,

    /// <summary>Queued or held → dropped, without a DSN.</summary>
    Drop,
}

/// <summary>
/// Which recipient records an operator asks about. <see cref="Domain"/>, <see cref="States"/> and the
/// submission times go into the table query (partition, State and SubmittedAt columns), so the service
/// filters; <see cref="Tags"/> are matched on the records returned.
/// </summary>
public sealed record QueueSelection
{
    /// <summary>The states <c>queue list</c> shows unless asked otherwise: what is still to be delivered.</summary>
    public static readonly IReadOnlyList<string> Pending = [RecipientState.Queued, RecipientState.Held];

    /// <summary>Every state a record can be in.</summary>
    public static readonly IReadOnlyList<string> AllStates = [RecipientState.Queued, RecipientState.Held, RecipientState.Delivered, RecipientState.Failed, RecipientState.Expired, RecipientState.Dropped, RecipientState.Suppressed];

    /// <summary>Recipient domain (its partition); null: all.</summary>
    public string? Domain { get; init; }

    /// <summary>Envelope sender; "&lt;&gt;" for the null sender; null: any.</summary>
    public string? Sender { get; init; }

    /// <summary>The states to include.</summary>
    public IReadOnlyList<string> States { get; init; } = Pending;

    /// <summary>Only records submitted before this.</summary>
    public DateTimeOffset? SubmittedBefore { get; init; }

    /// <summary>Only records submitted at or after this.</summary>
    public DateTimeOffset? SubmittedAfter { get; init; }

    /// <summary>Only records carrying all of these tags.</summary>
    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>
    /// The table filter. Row keys at or above <see cref="RecipientRecord.RecordRowKeyLimit"/> (the lease, the
    /// event outbox, the domain's TLS row) are not records and are never read.
    /// </summary>
    /// <exception cref="FormatException">The domain or sender does not parse.</exception>
    public string ToFilter()
    {
        var parts = new List<string> { TableClient.CreateQueryFilter($"RowKey lt {RecipientRecord.RecordRowKeyLimit}") };
        if (Domain is not null)
        {
            parts.Add(DomainPartition.FilterOf(NormalizedDomain(Domain)));
        }
        if (Sender is not null)
        {
            parts.Add(TableClient.CreateQueryFilter($"Sender eq {NormalizedSender(Sender)}"));
        }
        if (States.Count > 0)
        {
            parts.Add("(" + string.Join(" or ", States.Select(s => TableClient.CreateQueryFilter($"State eq {s}"))) + ")");
        }
        if (SubmittedBefore is { } before)
        {
            parts.Add(TableClient.CreateQueryFilter($"SubmittedAt lt {before}"));
        }
        if (SubmittedAfter is { } after)
        {
            parts.Add(TableClient.CreateQueryFilter($"SubmittedAt ge {after}"));
        }
        return string.Join(" and ", parts);
    }

    /// <summary>Whether <paramref name="record"/> has the tags asked for (the part the table cannot filter).</summary>
    public bool MatchesTags(RecipientRecord record) =>
        Tags is not { Count: > 0 } || Tags.All(t => record.TagMap.TryGetValue(t.Key, out var value) && value == t.Value);

    /// <summary>The partition key of a domain as the operator typed it: A-labels, lower case, as submissions store it.</summary>
    private static string NormalizedDomain(string domain) =>
        NextHop.TryParse(domain, out var hop, out var error) ? hop.ToString() : throw new FormatException($"--domain {domain}: {error}");

    /// <summary>The sender as records store it: empty for the null sender, else the address in the one grammar's form.</summary>
    private static string NormalizedSender(string sender) => sender is "" or "<>" ? string.Empty
        : EmailAddress.TryParse(sender.Trim('<', '>'), out var address, out var error) ? address.ToString() : throw new FormatException($"--sender {sender}: {error}");
}

/// <summary>A record an action left alone, and why (its state does not allow it).</summary>
public sealed record OperatorSkip(string Id, string Reason);

/// <summary>What an action did: the ids it changed and those it skipped.</summary>
public sealed record OperatorResult(IReadOnlyList<string> Changed, IReadOnlyList<OperatorSkip> Skipped);

/// <summary>
/// The operator's hand on the queue: finding records (by id, by message, by selection) and holding,
/// releasing, retrying, failing and dropping them.
/// </summary>
/// <remarks>
/// <para>
/// Rules. Only <c>queued</c> records are delivered: the wake-up run (ReadyAsync), the sweeper
/// (DomainsDueAsync) and the queue sampler all query that state, so a <c>held</c> record is never
/// attempted. Holding keeps its attempts and next-attempt time; expiry counts attempts (RetrySchedule), so a
/// held record does not expire, and the purge keeps held records and their bodies. Release makes it due at
/// once and wakes its domain; its retry schedule then goes on from the attempts it had.
/// </para>
/// <para>
/// Each change is written with OutboundQueue.SaveAsync, so its event (CloudDelivery.Recipient.Held,
/// .Released, .Retried, .Failed, .Dropped) goes into the same transaction, in batches per partition. A record
/// whose state does not allow the action is skipped with the reason, not an error. A record being attempted
/// at the very moment of the change can have the attempt's outcome written over it (as postsuper acting on
/// a message in the active queue): the outcome of a delivery that happened wins.
/// </para>
/// </remarks>
public sealed class OperatorActions(OutboundQueue queue, string reportingMta, ILogger? logger = null)
{
    /// <summary>Records per SaveAsync call: with their events, one table transaction (at most 100 entities).</summary>
    private const int RecordsPerWrite = 50;

    /// <summary>The reply an operator's failure is reported with, in the event and the DSN: RFC 3463 §3.1, X.0.0 "other undefined status".</summary>
    public static readonly SmtpReply FailedByOperator = new(550, "5.0.0", "failed by an operator");

    private readonly DsnSender dsns = new(queue, reportingMta, logger);

    public OutboundQueue Queue => queue;

    /// <summary>The records <paramref name="selection"/> names, in partition and row key order.</summary>
    /// <exception cref="FormatException">The selection's domain or sender does not parse.</exception>
    public async IAsyncEnumerable<RecipientRecord> ListAsync(QueueSelection selection, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var record in queue.Storage.Recipients.QueryAsync<RecipientRecord>(selection.ToFilter(), cancellationToken: cancellationToken))
        {
            if (selection.MatchesTags(record))
            {
                yield return record;
            }
        }
    }

    /// <summary>The records of <paramref name="id"/>: a recipient id ("domain/row"), or every recipient of a message id.</summary>
    public async Task<List<RecipientRecord>> FindAsync(string id, CancellationToken cancellationToken) =>
        id.Contains('/', StringComparison.Ordinal)
            ? (await queue.FindAsync(id, cancellationToken) is { } one ? [one] : [])
            : await queue.FindMessageAsync(id, cancellationToken);

    /// <summary>Why <paramref name="action"/> does not apply to a record in <paramref name="state"/>; null when it does.</summary>
    public static string? WhyNot(OperatorAction action, string state) => (action, state) switch
    {
        (OperatorAction.Hold or OperatorAction.Retry, RecipientState.Queued) => null,
        (OperatorAction.Release, RecipientState.Held) => null,
        (OperatorAction.Fail or OperatorAction.Drop, RecipientState.Queued or RecipientState.Held) => null,
        (OperatorAction.Hold, RecipientState.Held) => "already held",
        (OperatorAction.Release, RecipientState.Queued) => "not held",
        (OperatorAction.Retry, RecipientState.Held) => "held; release it instead",
        _ => $"{state}, not queued",
    };

    /// <summary>
    /// Applies <paramref name="action"/> to <paramref name="records"/> (as read just before), writes the
    /// changes with their events, wakes the domains of released and retried records, and sends the DSNs of
    /// failed ones.
    /// </summary>
    public async Task<OperatorResult> ApplyAsync(OperatorAction action, IReadOnlyList<RecipientRecord> records, CancellationToken cancellationToken)
    {
        var changed = new List<RecipientRecord>();
        var skipped = new List<OperatorSkip>();
        foreach (var record in records)
        {
            if (WhyNot(action, record.State) is { } reason)
            {
                skipped.Add(new OperatorSkip(record.Id, reason));
            }
            else
            {
                changed.Add(record);
            }
        }
        var now = queue.Time.GetUtcNow();
        var owed = new List<OwedDsn>();
        foreach (var partition in changed.GroupBy(r => r.PartitionKey))
        {
            foreach (var batch in partition.Chunk(RecordsPerWrite))
            {
                var results = new List<(RecipientRecord Record, RecipientResult Result)>();
                foreach (var record in batch)
                {
                    Change(action, record, now);
                    if (action == OperatorAction.Fail)
                    {
                        var result = OperatorFailure(record);
                        results.Add((record, result));
                        owed.Add(new OwedDsn(record, result, Delayed: false));
                    }
                }
                await queue.SaveAsync(batch, results);
            }
            if (action is OperatorAction.Release or OperatorAction.Retry)
            {
                await queue.WakeAsync(partition.Key, TimeSpan.Zero, cancellationToken);
            }
        }
        if (owed.Count > 0)
        {
            await dsns.SendAsync(owed, cancellationToken);
        }
        return new OperatorResult(changed.Select(r => r.Id).ToList(), skipped);
    }

    private static void Change(OperatorAction action, RecipientRecord record, DateTimeOffset now)
    {
        switch (action)
        {
            case OperatorAction.Hold:
                // Attempts and NextAttemptAt stay: the record goes on where it stood when released.
                record.State = RecipientState.Held;
                record.AddEvent(now, "held", "held by an operator");
                break;
            case OperatorAction.Release:
                record.State = RecipientState.Queued;
                record.NextAttemptAt = now;
                record.AddEvent(now, "released", "released by an operator; due now");
                break;
            case OperatorAction.Retry:
                record.NextAttemptAt = now;
                record.AddEvent(now, "retry", "operator asked for an attempt now");
                break;
            case OperatorAction.Fail:
                record.State = RecipientState.Failed;
                record.AddEvent(now, "failed", FailedByOperator.Text);
                break;
            case OperatorAction.Drop:
                record.State = RecipientState.Dropped;
                record.AddEvent(now, "dropped", "removed by an operator");
                break;
        }
    }

    /// <summary>The result an operator's failure stands for: permanent, decided here, no remote host.</summary>
    private static RecipientResult OperatorFailure(RecipientRecord record) => new(
        record.MessageId,
        EmailAddress.Unchecked(record.Recipient, NextHop.TryParse(record.Domain, out var hop, out _) ? hop : throw new InvalidOperationException($"record {record.Id} has an invalid partition")),
        RecipientStatus.Permanent,
        Host: null,
        Address: null,
        FailedByOperator);
}
