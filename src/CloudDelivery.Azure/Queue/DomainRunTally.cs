using System.Net;
using CloudDelivery.Delivery;
using CloudDelivery.Queue;

namespace CloudDelivery.Azure.Queue;

/// <summary>A recipient whose saved outcome owes its sender a DSN ("delayed" or "failed").</summary>
internal sealed record OwedDsn(RecipientRecord Record, RecipientResult Result, bool Delayed);

/// <summary>The records a batch of results changed, the outcomes to report once saved, and the DSNs they call for.</summary>
internal sealed record TalliedResults(List<RecipientRecord> Changed, List<(RecipientRecord Record, RecipientResult Result)> Outcomes, List<OwedDsn> Dsns);

/// <summary>
/// The bookkeeping of one delivery run of a domain: applies the engine's queue rules to each result as a
/// session reports it, counts the outcomes, and keeps the DSNs owed by saved outcomes. Parallel sessions to
/// a host report concurrently, each for its own transaction.
/// </summary>
internal sealed class DomainRunTally(Dictionary<(string MessageId, string Recipient), RecipientRecord> byKey, Dictionary<string, List<IPAddress>> dialled, RetrySchedule retry, BounceClassifier? classifier = null)
{
    private readonly Lock gate = new();
    private readonly List<OwedDsn> owed = [];
    private int delivered;
    private int deferred;
    private int throttled;
    private int heldBack;

    public int Delivered
    {
        get
        {
            lock (gate)
            {
                return delivered;
            }
        }
    }

    public int Deferred
    {
        get
        {
            lock (gate)
            {
                return deferred;
            }
        }
    }

    /// <summary>Recipients a receiver throttled: queued again without spending an attempt (see <see cref="Deferral"/>).</summary>
    public int Throttled
    {
        get
        {
            lock (gate)
            {
                return throttled;
            }
        }
    }

    /// <summary>Recipients traffic shaping held back untried: queued again without spending an attempt.</summary>
    public int HeldBack
    {
        get
        {
            lock (gate)
            {
                return heldBack;
            }
        }
    }

    /// <summary>Recipients failed for good (failed or expired), whether or not anyone gets their DSN.</summary>
    public int Failed
    {
        get
        {
            lock (gate)
            {
                return owed.Count(f => !f.Delayed);
            }
        }
    }

    /// <summary>Applies <paramref name="results"/> attempted at <paramref name="now"/> to their records.</summary>
    public TalliedResults Apply(IReadOnlyList<RecipientResult> results, DateTimeOffset now)
    {
        var tallied = new TalliedResults([], [], []);
        lock (gate)
        {
            foreach (var result in results)
            {
                if (!byKey.TryGetValue((result.MessageId, result.Recipient.ToString()), out var record))
                {
                    continue;
                }
                var transition = RecipientTransition.Of(record.ToQueued(), result, now, retry);
                record.Apply(transition, result, now, dialled, classifier);
                tallied.Changed.Add(record);
                tallied.Outcomes.Add((record, result));
                if (transition.State == QueuedRecipientState.Delivered)
                {
                    delivered++;
                }
                else if (transition.State == QueuedRecipientState.Queued)
                {
                    deferred++;
                    throttled += transition.EventType == Deferral.ThrottledEvent ? 1 : 0;
                    heldBack += transition.EventType == Deferral.DeferredEvent ? 1 : 0;
                }
                // Kept even when nobody gets the DSN (a DSN, a report, the null sender): it counts as failed.
                var dsn = DsnEligibility.KindOf(transition);
                if (dsn != DsnKind.None)
                {
                    tallied.Dsns.Add(new OwedDsn(record, result, dsn == DsnKind.Delay));
                }
            }
        }
        return tallied;
    }

    /// <summary>Only saved outcomes owe a DSN: one whose save failed is attempted again.</summary>
    public void Saved(TalliedResults tallied)
    {
        lock (gate)
        {
            owed.AddRange(tallied.Dsns);
        }
    }

    /// <summary>The DSNs owed so far.</summary>
    public List<OwedDsn> OwedDsns()
    {
        lock (gate)
        {
            return [.. owed];
        }
    }
}
