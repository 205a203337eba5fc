using System.Text.Json.Serialization;

namespace CloudDelivery.TlsRpt;

// SMTP TLS Reporting (RFC 8460): receiving domains publish "_smtp._tls" TXT records asking senders for a
// daily report on how TLS went when delivering to them. A report holds one entry per policy the sender
// applied (an MTA-STS policy of the recipient domain, DANE TLSA records of an MX host, or "no policy
// found"), with counts of successful and failed sessions and details of the failures. The engine produces
// these entries per delivery attempt; aggregating them per day and sending the reports comes later.

/// <summary>The kind of policy a result is about (RFC 8460 §4.4, "policy-type").</summary>
public static class TlsRptPolicyType
{
    public const string Tlsa = "tlsa";
    public const string Sts = "sts";
    public const string NoPolicyFound = "no-policy-found";
}

/// <summary>The result types of RFC 8460 §4.3, as they appear in "result-type".</summary>
public static class TlsRptResultType
{
    // §4.3.1 negotiation failures
    public const string StartTlsNotSupported = "starttls-not-supported";
    public const string CertificateHostMismatch = "certificate-host-mismatch";
    public const string CertificateExpired = "certificate-expired";
    public const string CertificateNotTrusted = "certificate-not-trusted";
    public const string ValidationFailure = "validation-failure";

    // §4.3.2 policy failures, DANE
    public const string TlsaInvalid = "tlsa-invalid";
    public const string DnssecInvalid = "dnssec-invalid";
    public const string DaneRequired = "dane-required";

    // §4.3.2 policy failures, MTA-STS
    public const string StsPolicyFetchError = "sts-policy-fetch-error";
    public const string StsPolicyInvalid = "sts-policy-invalid";
    public const string StsWebPkiInvalid = "sts-webpki-invalid";
}

/// <summary>The policy a <see cref="TlsRptResult"/> is about (RFC 8460 §4.4 "policy").</summary>
public sealed record TlsRptPolicy
{
    [JsonPropertyName("policy-type")]
    public required string Type { get; init; }

    /// <summary>The policy text line by line: MTA-STS policy lines, or TLSA records in presentation form.</summary>
    [JsonPropertyName("policy-string")]
    public IReadOnlyList<string> Strings { get; init; } = [];

    /// <summary>The domain the policy was found at, in A-labels (RFC 8460 §4.4).</summary>
    [JsonPropertyName("policy-domain")]
    public required string Domain { get; init; }

    /// <summary>The MX patterns of an MTA-STS policy.</summary>
    [JsonPropertyName("mx-host")]
    public IReadOnlyList<string> MxHosts { get; init; } = [];

    public bool SameAs(TlsRptPolicy other) =>
        Type == other.Type && Domain == other.Domain && Strings.SequenceEqual(other.Strings) && MxHosts.SequenceEqual(other.MxHosts);
}

/// <summary>One failure-details entry (RFC 8460 §4.4). Entries with equal fields but the count are merged.</summary>
public sealed record TlsRptFailureDetails
{
    [JsonPropertyName("result-type")]
    public required string ResultType { get; init; }

    [JsonPropertyName("sending-mta-ip")]
    public string SendingMtaIp { get; init; } = string.Empty;

    [JsonPropertyName("receiving-mx-hostname")]
    public string ReceivingMxHostname { get; init; } = string.Empty;

    [JsonPropertyName("receiving-mx-helo")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public string? ReceivingMxHelo { get; init; }

    [JsonPropertyName("receiving-ip")]
    public string ReceivingIp { get; init; } = string.Empty;

    [JsonPropertyName("failed-session-count")]
    public long FailedSessionCount { get; init; } = 1;

    [JsonPropertyName("additional-information")]
    public string AdditionalInformation { get; init; } = string.Empty;

    [JsonPropertyName("failure-reason-code")]
    public string FailureReasonCode { get; init; } = string.Empty;

    /// <summary>True when both describe the same kind of failure at the same place (all fields but the count).</summary>
    public bool SameKeyAs(TlsRptFailureDetails other) => this with { FailedSessionCount = 0 } == other with { FailedSessionCount = 0 };
}

/// <summary>The session counts of one policy (RFC 8460 §4.4 "summary").</summary>
/// <remarks>
/// A snapshot: counts change only through <see cref="TlsRptResult.Add"/>, so no caller can count a session
/// as a success that another call recorded a failure detail for.
/// </remarks>
public sealed class TlsRptSummary
{
    [JsonPropertyName("total-successful-session-count")]
    public long TotalSuccessfulSessionCount { get; init; }

    [JsonPropertyName("total-failure-session-count")]
    public long TotalFailureSessionCount { get; init; }
}

/// <summary>
/// What happened under one policy: the policy, session counts and merged failure details. A delivery
/// attempt yields one for the recipient domain (MTA-STS or no policy) and one per MX host tried (DANE or no
/// policy), like mox's queue does.
/// </summary>
/// <remarks>
/// Report consumers compute failure rates from the summary, so it must agree with the failure details
/// (RFC 8460 §4.2): each session is counted once, and as a failure whenever a failure detail was recorded
/// for it, even when the session went on to deliver (a certificate that failed validation under MTA-STS
/// "testing", an MX that offered no STARTTLS). The engine and the SMTP session report a session in pieces:
/// details noted before it (a policy fetch error, an MX outside a "testing" policy), details noted during
/// it (the certificate check), then its count, or no count when it ended without one. So a recorded detail
/// marks the current session as failed: its success, when it comes, is counted as a failure, and
/// <see cref="EndSession"/> (or the summary, for details no session followed) counts it when no count came.
/// </remarks>
public sealed class TlsRptResult
{
    private long successes;
    private long failures;

    // A failure detail was recorded for the session under way, which has not been counted yet.
    private bool currentSessionHasFailureDetail;

    public TlsRptResult(TlsRptPolicy policy) => Policy = policy;

    [JsonPropertyName("policy")]
    public TlsRptPolicy Policy { get; set; }

    /// <summary>The session counts, including a session under way that already has a failure detail.</summary>
    [JsonPropertyName("summary")]
    public TlsRptSummary Summary => new()
    {
        TotalSuccessfulSessionCount = successes,
        TotalFailureSessionCount = failures + (currentSessionHasFailureDetail ? 1 : 0),
    };

    [JsonPropertyName("failure-details")]
    public List<TlsRptFailureDetails> FailureDetails { get; } = [];

    /// <summary>A result for a policy type and domain without policy strings (no-policy-found).</summary>
    public static TlsRptResult For(string policyType, string domain, params TlsRptFailureDetails[] details)
    {
        var result = new TlsRptResult(new TlsRptPolicy { Type = policyType, Domain = domain });
        result.Add(0, 0, details);
        return result;
    }

    /// <summary>
    /// Records what one session (or the preparation for it) contributed: a count of 1 ends the session;
    /// details mark it as failed, so a success counted for it afterwards becomes a failure.
    /// </summary>
    public void Add(long successes, long failures, params IEnumerable<TlsRptFailureDetails> details)
    {
        if (AddDetails(details))
        {
            currentSessionHasFailureDetail = true;
        }
        if (successes + failures > 0 && currentSessionHasFailureDetail)
        {
            if (failures == 0)
            {
                successes--;
                failures = 1;
            }
            currentSessionHasFailureDetail = false;
        }
        this.successes += successes;
        this.failures += failures;
    }

    /// <summary>
    /// Ends the session under way: one that had a failure detail but no count (it went on in plaintext, or
    /// the connection was lost) is counted as a failure now, so it cannot merge with the next session.
    /// </summary>
    public void EndSession()
    {
        if (currentSessionHasFailureDetail)
        {
            failures++;
            currentSessionHasFailureDetail = false;
        }
    }

    /// <summary>
    /// Adds totals that were already counted session by session (another result, or a stored one): no
    /// session-by-session adjustment.
    /// </summary>
    public void AddTotals(long successes, long failures, IEnumerable<TlsRptFailureDetails> details)
    {
        this.successes += successes;
        this.failures += failures;
        AddDetails(details);
    }

    /// <summary>Adds another result's counts and details into this one; the policies must be the same.</summary>
    public void Merge(TlsRptResult other)
    {
        var summary = other.Summary;
        AddTotals(summary.TotalSuccessfulSessionCount, summary.TotalFailureSessionCount, other.FailureDetails);
    }

    // Merges details with the same key (RFC 8460 §4.4); true when there was at least one.
    private bool AddDetails(IEnumerable<TlsRptFailureDetails> details)
    {
        var any = false;
        foreach (var detail in details)
        {
            any = true;
            var index = FailureDetails.FindIndex(d => d.SameKeyAs(detail));
            if (index >= 0)
            {
                FailureDetails[index] = FailureDetails[index] with { FailedSessionCount = FailureDetails[index].FailedSessionCount + detail.FailedSessionCount };
            }
            else
            {
                FailureDetails.Add(detail);
            }
        }
        return any;
    }
}
