using System.Net;
using System.Text.Json;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.Domains;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Messages;
using CloudDelivery.Queue;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Queue;

/// <summary>What one wake-up did.</summary>
/// <param name="Busy">Another worker holds the domain: it was asked to run again (<paramref name="RetryAt"/> null), or the wake-up was postponed to <paramref name="RetryAt"/>.</param>
/// <param name="Attempted">Recipients that were due and attempted.</param>
/// <param name="Delivered">Recipients delivered.</param>
/// <param name="Failed">Recipients failed for good (failed or expired).</param>
/// <param name="Deferred">Recipients to be retried (throttled and held back ones included).</param>
/// <param name="RetryAt">When the domain is next due, if anything is left.</param>
public sealed record DomainRunResult(bool Busy, int Attempted, int Delivered, int Failed, int Deferred, DateTimeOffset? RetryAt)
{
    /// <summary>Recipients a receiver throttled or traffic shaping held back: queued again without spending an attempt.</summary>
    public int Shaped { get; init; }
}

/// <summary>
/// Handles a wake-up for a recipient domain: takes the domain's lease, loads its ready recipient records,
/// groups them into messages (same body, sender and TLS requirement → one transaction with several
/// recipients), runs the delivery engine once for all of them, records each outcome as soon as the server
/// has replied, schedules retries with a delayed wake-up, and sends DSNs for failures, expiries and long
/// delays. The Functions queue trigger and the <c>serve</c> host both call this.
/// </summary>
public sealed class DomainDeliveryHandler(OutboundQueue queue, DeliveryEngine engine, string reportingMta, ILogger<DomainDeliveryHandler>? logger = null, SmarthostOptions? smarthost = null, TlsRptResultStore? tlsResults = null, QueueMetrics? metrics = null)
{
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>What each recipient domain supports, written only when it changed (see <see cref="RecipientDomainTlsStore"/>).</summary>
    private readonly RecipientDomainTlsStore domainTls = new(queue.Storage.Recipients, logger);

    private readonly DsnSender dsns = new(queue, reportingMta, logger, engine.Options.Classifier);

    /// <summary>Test hook: runs right after outcomes are saved, to simulate a crash at the worst moment.</summary>
    internal Func<Task>? AfterResultsSaved { get; set; }

    public async Task<DomainRunResult> HandleAsync(WakeUp wakeUp, CancellationToken cancellationToken)
    {
        var options = queue.Options;
        var time = queue.Time;
        var table = queue.Storage.Recipients;
        DomainLease? lease = null;
        var busyUntil = default(DateTimeOffset);
        for (var tries = 0; tries < 2 && lease is null; tries++)
        {
            (lease, busyUntil, var busyETag) = await DomainLease.TryAcquireAsync(table, time, wakeUp.Domain, options.DomainLease, cancellationToken);
            // The holder may have looked for ready records before ours were written: ask it to look once
            // more before it lets go, instead of coming back later (one write, no delay). When the lease
            // changed meanwhile, the holder is gone: try to take it.
            if (lease is null && busyETag != default && await DomainLease.RequestRerunAsync(table, wakeUp.Domain, busyETag, cancellationToken))
            {
                return new DomainRunResult(true, 0, 0, 0, 0, null);
            }
        }
        if (lease is null)
        {
            // Runs are short; waiting for the whole lease would hold the records up to its length.
            var retryAt = Min(busyUntil + TimeSpan.FromSeconds(1), time.GetUtcNow() + options.BusyRetryDelay);
            await queue.WakeAsync(wakeUp.Domain, retryAt - time.GetUtcNow(), cancellationToken);
            return new DomainRunResult(true, 0, 0, 0, 0, retryAt);
        }
        var total = new DomainRunResult(false, 0, 0, 0, 0, null);
        var released = false;
        try
        {
            for (var run = 0; run < MaxRunsPerLease; run++)
            {
                var (result, more) = await DeliverAsync(lease, cancellationToken);
                total = new DomainRunResult(false, total.Attempted + result.Attempted, total.Delivered + result.Delivered, total.Failed + result.Failed, total.Deferred + result.Deferred, result.RetryAt ?? total.RetryAt) { Shaped = total.Shaped + result.Shaped };
                if (more)
                {
                    // The run took its maximum of records: more may be ready. Keep the domain (a renewal,
                    // so the lease cannot run out across several short runs) and go on.
                    if (!await lease.RenewAsync(options.DomainLease, cancellationToken))
                    {
                        released = true; // lost: nothing to give back; its new holder serves the rest
                        break;
                    }
                    continue;
                }
                if (await lease.TryReleaseAsync(options.DomainLease, CancellationToken.None))
                {
                    released = true;
                    break;
                }
            }
        }
        finally
        {
            if (!released)
            {
                await lease.ReleaseAsync(CancellationToken.None);
            }
        }
        if (!released)
        {
            // Reruns kept coming: let another invocation continue rather than holding this one forever.
            await queue.WakeAsync(wakeUp.Domain, TimeSpan.Zero, cancellationToken);
        }
        return total;
    }

    /// <summary>Reruns one invocation does for other workers' requests before it hands the domain on by a wake-up.</summary>
    private const int MaxRunsPerLease = 20;

    private void Report(RecipientRecord record, RecipientResult result, DateTimeOffset now)
    {
        var outcome = RecipientOutcome.Of(record, result, now);
        metrics?.Record(outcome);
        RecipientResultLog.RecipientResult(log, record.MessageId, record.PartitionKey, result.Host ?? string.Empty, record.Attempts, outcome.Result, outcome.Reason, outcome.Tls, outcome.Category);
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <returns>The run's result, and whether it stopped at <see cref="OutboundQueueOptions.MaxRecordsPerRun"/> (more may be ready).</returns>
    private async Task<(DomainRunResult Result, bool More)> DeliverAsync(DomainLease lease, CancellationToken cancellationToken)
    {
        var time = queue.Time;
        var limit = queue.Options.MaxRecordsPerRun;
        var records = await queue.ReadyAsync(lease.Partition, cancellationToken, limit);
        if (records.Count == 0)
        {
            return (new DomainRunResult(false, 0, 0, 0, 0, null), false);
        }
        var domain = DomainPartition.DomainOf(lease.Partition);
        if (!NextHop.TryParse(domain, out var nextHop, out var error))
        {
            log.LogError("Records in partition {Partition} have an invalid domain: {Error}", lease.Partition, error);
            return (new DomainRunResult(false, 0, 0, 0, 0, null), false);
        }
        await MarkHotWhenBackloggedAsync(domain, records.Count, cancellationToken);

        var (messages, byKey) = await BuildMessagesAsync(records, nextHop, cancellationToken);
        var reportIds = records.Where(r => r.IsTlsReport).Select(r => r.MessageId).ToHashSet(StringComparer.Ordinal);
        var dialled = MergeDialled(records);
        var tally = new DomainRunTally(byKey, dialled, queue.Options.Retry, engine.Options.Classifier);
        using var renewal = new CancellationTokenSource();
        var renewing = RenewWhileDeliveringAsync(lease, renewal.Token);
        var finished = false;
        try
        {
            async Task ResultsReady(IReadOnlyList<RecipientResult> results, CancellationToken token)
            {
                // Recorded before anything else happens: a crash after this cannot deliver twice. The session
                // waits for this save before its next command; saves of concurrent sessions share requests.
                var now = time.GetUtcNow();
                var tallied = tally.Apply(results, now);
                await queue.SaveAsync(tallied.Changed, tallied.Outcomes);
                tally.Saved(tallied);
                // Reported once saved: an outcome that failed to save is attempted again and reported then.
                foreach (var (record, result) in tallied.Outcomes)
                {
                    Report(record, result, now);
                }
                // Only after the save: an address is suppressed for an outcome that is recorded.
                await Suppression.BounceSuppression.AddBouncesAsync(queue.Suppressions, tallied.Outcomes, log, token, engine.Options.Classifier);
                if (AfterResultsSaved is not null)
                {
                    await AfterResultsSaved();
                }
            }

            // Senders configured for the smarthost go there; the rest directly to the domain's MX hosts.
            var relayed = messages.Where(m => smarthost?.Handles(m.Sender) == true).ToList();
            var direct = messages.Except(relayed).ToList();
            if (relayed.Count > 0)
            {
                var relayRequest = new DeliveryRequest { Destination = nextHop, Messages = relayed, Attempt = records.Min(r => r.Attempts) + 1, ResultsReady = ResultsReady };
                await engine.DeliverViaSmarthostAsync(relayRequest, smarthost!, cancellationToken);
            }
            var request = new DeliveryRequest
            {
                Destination = nextHop,
                Messages = direct,
                Attempt = records.Min(r => r.Attempts) + 1,
                DialledAddresses = dialled,
                ResultsReady = ResultsReady,
            };
            if (direct.Count > 0)
            {
                var outcome = await engine.DeliverAsync(request, cancellationToken);
                await RecordTlsResultsAsync(domain, outcome, direct.All(m => reportIds.Contains(m.Id)), cancellationToken);
                if (outcome.DomainTls is { } seen)
                {
                    await domainTls.RecordAsync(domain, seen, cancellationToken);
                }
            }
            finished = true;
        }
        finally
        {
            await renewal.CancelAsync();
            await renewing;
            if (!finished)
            {
                // The run failed part way (a save failed in one session while others had saved theirs): the
                // failures already recorded as final still owe their senders a DSN, and nothing retries them.
                await SendDsnsAsync(tally.OwedDsns(), CancellationToken.None);
            }
        }

        await SendDsnsAsync(tally.OwedDsns(), cancellationToken);
        var next = records.Where(r => r.State == RecipientState.Queued).Select(r => (DateTimeOffset?)r.NextAttemptAt).Min();
        if (next is { } at)
        {
            await queue.WakeAsync(lease.Partition, at - time.GetUtcNow(), cancellationToken);
        }
        log.LogInformation("Domain {Domain}: {Delivered} delivered, {Failed} failed, {Deferred} deferred ({Throttled} throttled, {HeldBack} held back by shaping)", lease.Partition, tally.Delivered, tally.Failed, tally.Deferred, tally.Throttled, tally.HeldBack);
        // A run whose every recipient was held back (a paused destination) does not load the next batch just
        // to hold it back too: those records stay untouched and due, and go with the wake-up above.
        var shaped = tally.Throttled + tally.HeldBack;
        return (new DomainRunResult(false, records.Count, tally.Delivered, tally.Failed, tally.Deferred, next) { Shaped = shaped }, records.Count >= limit && shaped < records.Count);
    }

    /// <summary>
    /// The messages of <paramref name="records"/> (same body, sender and TLS requirement → one transaction)
    /// and the record behind each of their recipients.
    /// </summary>
    private async Task<(List<OutboundMessage> Messages, Dictionary<(string MessageId, string Recipient), RecipientRecord> ByKey)> BuildMessagesAsync(List<RecipientRecord> records, NextHop nextHop, CancellationToken cancellationToken)
    {
        var bodies = new Dictionary<string, MessageBody>(StringComparer.Ordinal);
        var byKey = new Dictionary<(string MessageId, string Recipient), RecipientRecord>();
        var messages = new List<OutboundMessage>();
        foreach (var group in MessageGrouping.Group(records.Select(r => (Record: r, Recipient: r.ToQueued())), item => item.Recipient))
        {
            var first = group.First().Record;
            if (!bodies.TryGetValue(group.Key.BodyIdentity, out var body))
            {
                bodies[group.Key.BodyIdentity] = body = await queue.BodyOfAsync(first, records, cancellationToken);
            }
            var recipients = new List<EmailAddress>();
            foreach (var (record, _) in group)
            {
                // Unchecked: a stored address the grammar refuses (a record of an older version) must fail
                // alone, in the engine's check before any session, not throw here and fail the whole run.
                var address = EmailAddress.Unchecked(record.Recipient, nextHop);
                recipients.Add(address);
                byKey[(record.MessageId, address.ToString())] = record;
            }
            messages.Add(new OutboundMessage
            {
                Id = first.MessageId,
                Sender = first.Sender.Length == 0 ? null : EmailAddress.Unchecked(first.Sender, nextHop),
                Recipients = recipients,
                Body = body,
                Has8BitContent = first.Has8Bit,
                NeedsSmtpUtf8 = first.SmtpUtf8,
                TlsRequirement = group.Key.TlsRequirement,
            });
        }
        return (messages, byKey);
    }

    /// <summary>
    /// A run that finds the domain's backlog past <see cref="OutboundQueueOptions.HotDomainBacklog"/> spreads
    /// its new records over shards (see <see cref="HotDomains"/>), so more workers can deliver it. A hint: a
    /// failed write is logged and the run goes on.
    /// </summary>
    private async Task MarkHotWhenBackloggedAsync(string domain, int ready, CancellationToken cancellationToken)
    {
        var threshold = queue.Options.HotDomainBacklog;
        if (threshold <= 0 || ready < threshold)
        {
            return;
        }
        try
        {
            if (await queue.HotDomains.MarkHotAsync(domain, cancellationToken))
            {
                log.LogInformation("Domain {Domain} has at least {Ready} ready records: its new records are spread over {Shards} shards", domain, ready, queue.Options.MaxShards);
            }
        }
        catch (global::Azure.RequestFailedException e)
        {
            log.LogWarning(e, "Could not mark {Domain} hot", domain);
        }
    }

    private Task SendDsnsAsync(List<OwedDsn> owed, CancellationToken cancellationToken) => dsns.SendAsync(owed, cancellationToken);

    private async Task RecordTlsResultsAsync(string domain, DeliveryOutcome outcome, bool onlyTlsReports, CancellationToken cancellationToken)
    {
        // Sessions that carried only TLS reports are not counted, so reports do not beget reports (as mox).
        // Results through a smarthost say nothing about the recipient domain's policies and are not counted either.
        if (tlsResults is null || onlyTlsReports)
        {
            return;
        }
        try
        {
            await tlsResults.AddAsync(domain, outcome.RecipientDomainResult, outcome.HostResults, cancellationToken);
        }
        catch (global::Azure.RequestFailedException e)
        {
            // Statistics: a lost update is logged, it never fails or repeats a delivery.
            log.LogWarning(e, "Could not record TLSRPT results for {Domain}", domain);
        }
    }

    private static Dictionary<string, List<IPAddress>> MergeDialled(IEnumerable<RecipientRecord> records)
    {
        var merged = new Dictionary<string, List<IPAddress>>(StringComparer.Ordinal);
        foreach (var record in records.Where(r => r.DialledAddresses is not null))
        {
            var stored = JsonSerializer.Deserialize<Dictionary<string, string[]>>(record.DialledAddresses!) ?? [];
            foreach (var (host, addresses) in stored)
            {
                if (!merged.TryGetValue(host, out var list))
                {
                    merged[host] = list = [];
                }
                foreach (var text in addresses)
                {
                    if (IPAddress.TryParse(text, out var address) && !list.Contains(address))
                    {
                        list.Add(address);
                    }
                }
            }
        }
        return merged;
    }

    private async Task RenewWhileDeliveringAsync(DomainLease lease, CancellationToken cancellationToken)
    {
        var period = queue.Options.DomainLease / 3;
        try
        {
            while (true)
            {
                await Task.Delay(period, queue.Time, cancellationToken);
                try
                {
                    if (!await lease.RenewAsync(queue.Options.DomainLease, cancellationToken))
                    {
                        log.LogWarning("Lost the lease of {Domain} while delivering", lease.Partition);
                        return;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A failed renewal (storage briefly unreachable, a token refresh failing) must not end the
                    // run: its outcomes are saved, and its DSNs and next wake-up still have to follow. The
                    // lease has two more periods left; the next renewal tries again.
                    log.LogWarning(e, "Renewing the lease of {Domain} failed; trying again in {Period}", lease.Partition, period);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
