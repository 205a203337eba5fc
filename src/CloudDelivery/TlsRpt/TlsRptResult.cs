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
public sealed class TlsRptSummary
{
    [JsonPropertyName("total-successful-session-count")]
    public long TotalSuccessfulSessionCount { get; set; }

    [JsonPropertyName("total-failure-session-count")]
    public long TotalFailureSessionCount { get; set; }
}

/// <summary>
/// What happened under one policy: the policy, session counts and merged failure details. A delivery
/// attempt yields one for the recipient domain (MTA-STS or no policy) and one per MX host tried (DANE or no
/// policy), like mox's queue does.
/// </summary>
public sealed class TlsRptResult
{
    public TlsRptResult(TlsRptPolicy policy) => Policy = policy;

    [JsonPropertyName("policy")]
    public TlsRptPolicy Policy { get; set; }

    [JsonPropertyName("summary")]
    public TlsRptSummary Summary { get; } = new();

    [JsonPropertyName("failure-details")]
    public List<TlsRptFailureDetails> FailureDetails { get; } = [];

    /// <summary>A result for a policy type and domain without policy strings (no-policy-found).</summary>
    public static TlsRptResult For(string policyType, string domain, params TlsRptFailureDetails[] details)
    {
        var result = new TlsRptResult(new TlsRptPolicy { Type = policyType, Domain = domain });
        result.Add(0, 0, details);
        return result;
    }

    /// <summary>Adds session counts and failure details, merging details with the same key (RFC 8460 §4.4).</summary>
    public void Add(long successes, long failures, params IEnumerable<TlsRptFailureDetails> details)
    {
        Summary.TotalSuccessfulSessionCount += successes;
        Summary.TotalFailureSessionCount += failures;
        foreach (var detail in details)
        {
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
    }

    /// <summary>Adds another result's counts and details into this one; the policies must be the same.</summary>
    public void Merge(TlsRptResult other)
    {
        Add(other.Summary.TotalSuccessfulSessionCount, other.Summary.TotalFailureSessionCount, other.FailureDetails);
    }
}
