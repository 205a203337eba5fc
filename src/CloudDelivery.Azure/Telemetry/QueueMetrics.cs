using System.Diagnostics.Metrics;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Delivery;
using CloudDelivery.Queue;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// The queue's instruments, on the meter "CloudDelivery.Queue": per-recipient outcomes and latency, TLSRPT
/// reports, and gauges of the queue's size and age. Names and tags are the contract with the workbook and
/// alert rules (docs/telemetry.md); tags are low-cardinality on purpose, never a domain or an address.
/// </summary>
public sealed class QueueMetrics : IDisposable
{
    public const string MeterName = "CloudDelivery.Queue";

    private readonly Meter meter;
    private volatile QueueSnapshot? snapshot;

    public QueueMetrics(IMeterFactory? factory = null)
    {
        meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        Recipients = meter.CreateCounter<long>("clouddelivery.recipients", description: "Recipient attempt outcomes; tags result (delivered, deferred, throttled, shaped, failed, expired), tls (dane, mtasts, opportunistic, plaintext, none), reason (enhanced status class.subject or dns, connection, timeout, tls, policy) and, unless delivered, category (bad-mailbox, throttled, …).");
        RecipientLatency = meter.CreateHistogram<double>("clouddelivery.recipient.latency", unit: "s", description: "Time from submission to a final result; tag result (delivered, failed, expired).");
        TlsRptReports = meter.CreateCounter<long>("clouddelivery.tlsrpt.reports", description: "TLSRPT reports handed over; tags transport (mailto, https) and result (sent, failed).");
        meter.CreateObservableGauge("clouddelivery.queue.records", ObserveRecords, description: "Recipient records not yet final, from the latest sample (a lower bound when the sample was capped); tag state (queued: never attempted, deferred: waiting to retry).");
        meter.CreateObservableGauge("clouddelivery.queue.oldest_ready_age", ObserveOldestReadyAge, unit: "s", description: "Age since submission of the oldest record that is due now, from the latest sample; 0 when none; tag state (queued, deferred).");
        meter.CreateObservableGauge("clouddelivery.queue.messages", ObserveMessages, description: "Approximate message count of the storage queue, from the latest sample; tag queue (wakeups, poison).");
    }

    /// <summary>The meter the instruments belong to (one per instance, so listeners can tell instances apart).</summary>
    public Meter Meter => meter;

    public Counter<long> Recipients { get; }

    public Histogram<double> RecipientLatency { get; }

    public Counter<long> TlsRptReports { get; }

    /// <summary>What the gauges report: the sampler's latest figures, or nothing before the first sample.</summary>
    public QueueSnapshot? Snapshot
    {
        get => snapshot;
        set => snapshot = value;
    }

    /// <summary>
    /// A snapshot older than this is not reported: after a Functions timer moves to another instance, the
    /// instance it left would otherwise export frozen figures forever. Set by the sampler (3 × its interval).
    /// </summary>
    public TimeSpan SnapshotLifetime { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>The clock that ages snapshots; the sampler's.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Counts one recipient outcome and, when it is final, its latency.</summary>
    public void Record(RecipientOutcome outcome)
    {
        if (outcome.Reason.Length == 0)
        {
            Recipients.Add(1, new KeyValuePair<string, object?>("result", outcome.Result), new KeyValuePair<string, object?>("tls", outcome.Tls));
        }
        else
        {
            Recipients.Add(1, new KeyValuePair<string, object?>("result", outcome.Result), new KeyValuePair<string, object?>("tls", outcome.Tls), new KeyValuePair<string, object?>("reason", outcome.Reason), new KeyValuePair<string, object?>("category", outcome.Category));
        }
        if (outcome.Latency is { } latency)
        {
            RecipientLatency.Record(Math.Max(0, latency.TotalSeconds), new KeyValuePair<string, object?>("result", outcome.Result));
        }
    }

    /// <summary>Counts one TLSRPT report handed to a destination (or not).</summary>
    public void RecordTlsReport(bool https, bool sent) =>
        TlsRptReports.Add(1, new KeyValuePair<string, object?>("transport", https ? "https" : "mailto"), new KeyValuePair<string, object?>("result", sent ? "sent" : "failed"));

    private QueueSnapshot? Current() =>
        snapshot is { } current && Time.GetUtcNow() - current.SampledAt <= SnapshotLifetime ? current : null;

    private IEnumerable<Measurement<long>> ObserveRecords()
    {
        if (Current() is not { } current)
        {
            return [];
        }
        return [new(current.Queued, new KeyValuePair<string, object?>("state", "queued")), new(current.Deferred, new KeyValuePair<string, object?>("state", "deferred"))];
    }

    private IEnumerable<Measurement<double>> ObserveOldestReadyAge()
    {
        if (Current() is not { } current)
        {
            return [];
        }
        return [new(current.OldestReadyQueued.TotalSeconds, new KeyValuePair<string, object?>("state", "queued")), new(current.OldestReadyDeferred.TotalSeconds, new KeyValuePair<string, object?>("state", "deferred"))];
    }

    private IEnumerable<Measurement<long>> ObserveMessages()
    {
        if (Current() is not { } current)
        {
            return [];
        }
        return [new(current.WakeUpMessages, new KeyValuePair<string, object?>("queue", "wakeups")), new(current.PoisonMessages, new KeyValuePair<string, object?>("queue", "poison"))];
    }

    public void Dispose() => meter.Dispose();
}

/// <summary>The queue figures of one sample.</summary>
/// <param name="SampledAt">When the sample was taken.</param>
/// <param name="Queued">Records never attempted.</param>
/// <param name="Deferred">Records attempted and waiting for a retry.</param>
/// <param name="OldestReadyQueued">Age of the oldest never-attempted record that is due; zero when none.</param>
/// <param name="OldestReadyDeferred">Age of the oldest deferred record that is due; zero when none.</param>
/// <param name="WakeUpMessages">Approximate messages in the wake-up queue.</param>
/// <param name="PoisonMessages">Approximate messages in the poison queue.</param>
/// <param name="Capped">The record scan stopped at its cap: the record figures are lower bounds.</param>
public sealed record QueueSnapshot(
    DateTimeOffset SampledAt,
    long Queued,
    long Deferred,
    TimeSpan OldestReadyQueued,
    TimeSpan OldestReadyDeferred,
    long WakeUpMessages,
    long PoisonMessages,
    bool Capped);

/// <summary>One recipient outcome in the terms of the metrics and the RecipientResult log event.</summary>
/// <param name="Result">delivered, deferred, failed or expired; throttled (a receiver's throttling reply) or shaped (held back by traffic shaping untried) for a deferral.</param>
/// <param name="Tls">dane, mtasts, opportunistic, plaintext or none.</param>
/// <param name="Reason">Empty when delivered; else the enhanced status class.subject or dns, connection, timeout, tls, policy.</param>
/// <param name="Latency">Submission to the final result; null while the recipient is deferred.</param>
public sealed record RecipientOutcome(string Result, string Tls, string Reason, TimeSpan? Latency)
{
    /// <summary>Empty when delivered; else the bounce category ("throttled", "bad-mailbox", …; README "Bounce classification").</summary>
    public string Category { get; init; } = string.Empty;

    /// <summary>The outcome of <paramref name="result"/> after it was applied to <paramref name="record"/> at <paramref name="now"/>.</summary>
    public static RecipientOutcome Of(RecipientRecord record, RecipientResult result, DateTimeOffset now)
    {
        var outcome = RecipientRecordMapping.StateOf(record.State) switch
        {
            QueuedRecipientState.Delivered => "delivered",
            QueuedRecipientState.Failed => "failed",
            QueuedRecipientState.Expired => "expired",
            _ when result.Status == RecipientStatus.Deferred => Deferral.IsThrottled(result) ? "throttled" : "shaped",
            _ => "deferred",
        };
        var final = outcome is not ("deferred" or "throttled" or "shaped");
        return new RecipientOutcome(
            outcome,
            TlsName(result.Tls),
            outcome == "delivered" ? string.Empty : ReasonOf(result),
            final ? now - record.SubmittedAt : null)
        {
            // The category Apply stored with the configured classifier; the shipped rules' reading otherwise.
            Category = outcome == "delivered" ? string.Empty : record.LastCategory ?? BounceClassification.Name(BounceClassification.Of(result)),
        };
    }

    public static string TlsName(TlsPosture posture) => posture switch
    {
        TlsPosture.Dane => "dane",
        TlsPosture.MtaSts => "mtasts",
        TlsPosture.Opportunistic => "opportunistic",
        TlsPosture.Plaintext => "plaintext",
        _ => "none",
    };

    /// <summary>
    /// The failure's class and subject ("4.4", "5.1"): enough to tell mailbox, routing, network and policy
    /// problems apart while keeping the tag to a few dozen values. A reply without an enhanced code gives
    /// its class with subject 0 ("5.0"). Without a server reply: what went wrong locally.
    /// </summary>
    public static string ReasonOf(RecipientResult result)
    {
        switch (result.LocalFailure)
        {
            case LocalFailure.Dns:
                return "dns";
            case LocalFailure.Connection:
                return "connection";
            case LocalFailure.Timeout:
                return "timeout";
            case LocalFailure.Tls:
                return "tls";
            case LocalFailure.Policy:
                return "policy";
        }
        var code = result.Reply.EnhancedCode;
        if (code is not null)
        {
            var parts = code.Split('.');
            if (parts.Length == 3 && parts[0] is "2" or "4" or "5" && int.TryParse(parts[1], out var subject) && subject is >= 0 and < 1000)
            {
                return $"{parts[0]}.{subject}";
            }
        }
        return result.Reply.Code is >= 200 and < 600 ? $"{result.Reply.Code / 100}.0" : "connection";
    }
}
