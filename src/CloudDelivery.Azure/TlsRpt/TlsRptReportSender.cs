using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using CloudDelivery.TlsRpt;
using CloudDelivery.TlsRpt.Https;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.TlsRpt;

/// <summary>Settings of TLSRPT reporting. Bound from "CloudDelivery:TlsRpt".</summary>
public sealed class TlsRptOptions
{
    /// <summary>Record results and send daily reports; false opts out of both.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>"organization-name" of reports; default: the submitter domain.</summary>
    public string? OrganizationName { get; set; }

    /// <summary>"contact-info" of reports; default: postmaster@ the submitter domain.</summary>
    public string? ContactInfo { get; set; }

    /// <summary>The domain reports come from (report ids, file names, From); default: the parent domain of the host name.</summary>
    public string? SubmitterDomain { get; set; }

    /// <summary>Send a domain's report only when the day had a failure (mox's default); false sends every day with traffic.</summary>
    public bool OnlyWithFailures { get; set; }

    /// <summary>Days of results kept for <c>tlsrpt show</c> and for retrying reports that could not be sent.</summary>
    public int RetentionDays { get; set; } = 3;

    /// <summary>
    /// How long each delivery run's TLSRPT results wait in memory before they are written (one write per
    /// recipient domain and interval instead of one per run); zero writes every run's at once. A crash loses
    /// at most this interval's counts, and `tlsrpt show` lags by as much.
    /// </summary>
    public TimeSpan ResultsFlushInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest random wait before a scheduled run starts, so many senders do not report at the same second.</summary>
    public TimeSpan StartJitter { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The reporter identity, with defaults derived from <paramref name="hostname"/>.</summary>
    public TlsRptReporter ToReporter(string hostname)
    {
        var submitter = SubmitterDomain;
        if (string.IsNullOrWhiteSpace(submitter))
        {
            // mail.example.com reports as example.com; a single-label host name reports as itself.
            var dot = hostname.IndexOf('.', StringComparison.Ordinal);
            submitter = dot > 0 && hostname.IndexOf('.', dot + 1) > 0 ? hostname[(dot + 1)..] : hostname;
        }
        submitter = submitter.TrimEnd('.').ToLowerInvariant();
        return new TlsRptReporter
        {
            SubmitterDomain = submitter,
            OrganizationName = string.IsNullOrWhiteSpace(OrganizationName) ? submitter : OrganizationName,
            ContactInfo = string.IsNullOrWhiteSpace(ContactInfo) ? $"postmaster@{submitter}" : ContactInfo,
        };
    }
}

/// <summary>Where one report went, or why not.</summary>
/// <param name="Destination">"mailto:a@b,c@d" (one message to every mail destination) or the https URI.</param>
/// <param name="Error">Null when it was sent (now or in an earlier run).</param>
public sealed record TlsRptDestinationResult(string Destination, string? Error);

/// <summary>What happened to one policy domain's report of a day.</summary>
/// <param name="Report">The report (also when it was not sent, for dry runs and operators).</param>
/// <param name="Destinations">Each destination of the domain's record and how sending there went.</param>
/// <param name="Skipped">Why it was not sent at all (no record, no failures...), or null.</param>
public sealed record TlsRptReportOutcome(TlsRptReport Report, IReadOnlyList<TlsRptDestinationResult> Destinations, string? Skipped);

/// <summary>
/// Composes and sends the daily TLSRPT reports (RFC 8460 §4–§5) from the aggregated results, as mox's
/// tlsrptsend does: one report per recipient domain with everything applied when delivering to it, and one
/// per MX host domain that publishes its own record with other destinations. Reports go by mail through
/// CloudDelivery's own queue (DKIM-signed at submission like every message, <c>TLS-Required: No</c>) and by
/// HTTPS POST. What was sent is marked, so a run that failed halfway is retried without duplicates.
/// </summary>
public sealed class TlsRptReportSender(
    TlsRptResultStore store,
    OutboundQueue queue,
    DnsResolver resolver,
    TlsRptHttpsPoster poster,
    TlsRptReporter reporter,
    TlsRptOptions options,
    ILogger<TlsRptReportSender>? logger = null,
    QueueMetrics? metrics = null)
{
    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>A sender wired from an engine's resolver, address policy and trust roots.</summary>
    public static TlsRptReportSender Create(TlsRptResultStore store, OutboundQueue queue, DeliveryEngine engine, TlsRptReporter reporter, TlsRptOptions options, ILogger<TlsRptReportSender>? logger = null, QueueMetrics? metrics = null) =>
        new(store, queue, engine.Resolver, new TlsRptHttpsPoster(engine.Resolver, engine.Options.AddressPolicy, engine.Options.ExtraTrustRoots, queue.Time), reporter, options, logger, metrics);

    public TlsRptReporter Reporter => reporter;

    /// <summary>
    /// The schedule of <see cref="RunAsync"/> as a CRON expression (Functions' six-field form): just after
    /// midnight UTC, when the previous day is complete (RFC 8460 §4.1 reports cover UTC days), and every six
    /// hours after that to retry destinations that failed.
    /// </summary>
    public const string Schedule = "0 10 0,6,12,18 * * *";

    /// <summary>The next time <see cref="Schedule"/> fires after <paramref name="now"/>.</summary>
    public static DateTimeOffset NextRun(DateTimeOffset now)
    {
        var utc = now.ToUniversalTime();
        var next = new DateTimeOffset(utc.Year, utc.Month, utc.Day, 0, 10, 0, TimeSpan.Zero);
        while (next <= utc)
        {
            next = next.AddHours(6);
        }
        return next;
    }

    /// <summary>
    /// The scheduled run: after a random start delay, sends the reports of every complete day still kept
    /// and not yet sent, then deletes days past retention. Never throws for a domain's failure.
    /// </summary>
    public async Task<IReadOnlyList<TlsRptReportOutcome>> RunAsync(CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            return [];
        }
        if (options.StartJitter > TimeSpan.Zero)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * options.StartJitter.TotalMilliseconds), queue.Time, cancellationToken);
        }
        var today = DateOnly.FromDateTime(queue.Time.GetUtcNow().UtcDateTime);
        var outcomes = new List<TlsRptReportOutcome>();
        foreach (var day in await store.DaysBeforeAsync(today, cancellationToken))
        {
            if (day < today.AddDays(-Math.Max(1, options.RetentionDays)))
            {
                await store.DeleteDayAsync(day, cancellationToken);
                continue;
            }
            outcomes.AddRange(await SendDayAsync(day, dryRun: false, cancellationToken));
        }
        return outcomes;
    }

    /// <summary>Builds the reports of <paramref name="day"/> and, unless <paramref name="dryRun"/>, sends those not sent yet.</summary>
    public async Task<IReadOnlyList<TlsRptReportOutcome>> SendDayAsync(DateOnly day, bool dryRun, CancellationToken cancellationToken)
    {
        var results = await store.ListAsync(day, cancellationToken);
        var marks = dryRun ? new Dictionary<string, TlsRptSendMark>() : await store.MarksAsync(day, cancellationToken);
        var outcomes = new List<TlsRptReportOutcome>();
        var records = new Dictionary<string, LookedUpRecord>(StringComparer.Ordinal);
        async Task<LookedUpRecord> RecordOf(string domain)
        {
            if (!records.TryGetValue(domain, out var found))
            {
                records[domain] = found = await LookupRecordAsync(domain, cancellationToken);
            }
            return found;
        }

        // Recipient domains first: each report holds all policies applied delivering there (RFC 8460 §4).
        var recipientDomains = results.Select(r => r.RecipientDomain).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        foreach (var domain in recipientDomains)
        {
            var report = TlsRptReport.Create(reporter, domain, day, results.Where(r => r.RecipientDomain == domain).Select(r => r.Result));
            outcomes.Add(marks.GetValueOrDefault(domain) is { Complete: true }
                ? new TlsRptReportOutcome(report, [], "already sent")
                : await SendAsync(report, await RecordOf(domain), marks.GetValueOrDefault(domain), dryRun, cancellationToken));
        }

        // Then MX host domains that publish a record of their own (mox does the same): their report holds
        // the host policies applied to them, under the recipient domain with the host as mx-host, unless the
        // recipient domain's report already went to the same destinations.
        var hostDomains = results.Where(r => r.IsHost && !recipientDomains.Contains(r.Result.Policy.Domain)).Select(r => r.Result.Policy.Domain).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        foreach (var host in hostDomains)
        {
            if (marks.GetValueOrDefault(host) is { Complete: true })
            {
                continue;
            }
            var hostRecord = await RecordOf(host);
            var applied = new List<TlsRptResult>();
            foreach (var result in results.Where(r => r.IsHost && r.Result.Policy.Domain == host))
            {
                var recipientRecord = (await RecordOf(result.RecipientDomain)).Record;
                if (hostRecord.Record is not null && recipientRecord is not null && recipientRecord.ReportingUris.SequenceEqual(hostRecord.Record.ReportingUris))
                {
                    continue;
                }
                var rewritten = new TlsRptResult(result.Result.Policy with { Domain = result.RecipientDomain, MxHosts = [host] });
                rewritten.Merge(result.Result);
                applied.Add(rewritten);
            }
            if (applied.Count > 0)
            {
                outcomes.Add(await SendAsync(TlsRptReport.Create(reporter, host, day, applied), hostRecord, marks.GetValueOrDefault(host), dryRun, cancellationToken));
            }
        }
        return outcomes;
    }

    private async Task<TlsRptReportOutcome> SendAsync(TlsRptReport report, LookedUpRecord record, TlsRptSendMark? mark, bool dryRun, CancellationToken cancellationToken)
    {
        string? skipped = record.Record is null ? record.Error ?? "no _smtp._tls record"
            : options.OnlyWithFailures && !report.HasFailures ? "no failures that day"
            : null;
        if (skipped is not null)
        {
            if (!dryRun && !record.Temporary)
            {
                // Nothing to send, now or later: later runs need not look again.
                await store.MarkSentAsync(report.Day, report.PolicyDomain, new TlsRptSendMark([], Complete: true), cancellationToken);
            }
            return new TlsRptReportOutcome(report, [], skipped);
        }
        var reportRecord = record.Record!;
        var mailto = reportRecord.MailtoAddresses.ToList();
        var destinations = new List<string>();
        if (mailto.Count > 0)
        {
            destinations.Add("mailto:" + string.Join(',', mailto));
        }
        destinations.AddRange(reportRecord.HttpsUris.Select(u => u.OriginalString));
        if (dryRun)
        {
            return new TlsRptReportOutcome(report, destinations.Select(d => new TlsRptDestinationResult(d, "dry run: not sent")).ToList(), null);
        }

        var sent = (mark?.Destinations ?? []).ToHashSet(StringComparer.Ordinal);
        var results = new List<TlsRptDestinationResult>();
        foreach (var destination in destinations)
        {
            string? error = null;
            if (!sent.Contains(destination))
            {
                var https = !destination.StartsWith("mailto:", StringComparison.Ordinal);
                error = https
                    ? await poster.PostAsync(new Uri(destination), report.ToGzip(), cancellationToken)
                    : await MailAsync(report, mailto, cancellationToken);
                metrics?.RecordTlsReport(https, sent: error is null);
                if (error is null)
                {
                    sent.Add(destination);
                    await store.MarkSentAsync(report.Day, report.PolicyDomain, new TlsRptSendMark(sent, destinations.All(sent.Contains)), cancellationToken);
                    log.LogInformation("TLS report {ReportId} sent to {Destination}", report.ReportId, destination.StartsWith("mailto:", StringComparison.Ordinal) ? "mailto" : destination);
                }
                else
                {
                    // Not marked: the next run tries this destination again.
                    log.LogWarning("TLS report {ReportId} to {Destination} failed: {Error}", report.ReportId, destination, error);
                }
            }
            results.Add(new TlsRptDestinationResult(destination, error));
        }
        return new TlsRptReportOutcome(report, results, null);
    }

    private async Task<string?> MailAsync(TlsRptReport report, IReadOnlyList<string> recipients, CancellationToken cancellationToken)
    {
        try
        {
            await queue.SubmitAsync(new SubmissionRequest
            {
                Sender = reporter.FromAddress,
                Recipients = recipients,
                Message = new MemoryStream(report.ToMessageBytes(reporter, recipients, queue.Time.GetUtcNow())),
                TlsRequiredNo = true,
                IsTlsReport = true,
            }, cancellationToken);
            return null;
        }
        catch (SubmissionException e)
        {
            return $"submission refused: {e.Message}";
        }
        catch (global::Azure.RequestFailedException e)
        {
            return $"storage: {e.Message}";
        }
    }

    private async Task<LookedUpRecord> LookupRecordAsync(string domain, CancellationToken cancellationToken)
    {
        var txt = await resolver.LookupTxtAsync($"_smtp._tls.{domain}", cancellationToken);
        if (txt.Failed)
        {
            // Temporary: the report stays unsent and the next run looks again.
            return new LookedUpRecord(null, $"_smtp._tls TXT lookup failed: {txt.Error}", Temporary: true);
        }
        try
        {
            var record = TlsRptRecord.Select(txt.Records);
            return new LookedUpRecord(record, record is null ? "no single _smtp._tls TLSRPT record (RFC 8460 §3)" : null, Temporary: false);
        }
        catch (TlsRptRecordException e)
        {
            return new LookedUpRecord(null, $"invalid _smtp._tls record: {e.Message}", Temporary: false);
        }
    }

    private sealed record LookedUpRecord(TlsRptRecord? Record, string? Error, bool Temporary);
}
