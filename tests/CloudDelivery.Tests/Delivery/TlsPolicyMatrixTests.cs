using CloudDelivery.Addressing;
using CloudDelivery.Dane;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// The whole matrix of the TLS-policy decision, without sockets: MTA-STS none/testing/enforce × DANE
/// none/usable/unusable/lookup-failed × the message's requirement (none, REQUIRETLS, TLS-Required: No) ×
/// STARTTLS offered or not. Each row states the expected outcome and the rule it follows.
/// </summary>
public class TlsPolicyMatrixTests
{
    public enum Dane { None, Usable, Unusable, LookupFailed }

    // Expected verification: "none", "pkix", "dane", "dane+pkix", "unusable", "unusable+pkix", each
    // "(ignored)" for TLS-Required: No. Expected failure: "-" or a DeliveryFailureKind. Without STARTTLS:
    // "plaintext" (go on), "fail" (temporary TLS failure), "fail, retry plaintext" (RFC 7435 §6), or "-"
    // when the policy refuses the host before connecting.
    private static readonly (MtaStsState Sts, Dane Dane, TlsRequirement Requirement, TlsMode Mode, string Verification, string Failure, string WithoutStartTls, string Rule)[] Rows =
    [
        (MtaStsState.None, Dane.None, TlsRequirement.Default, TlsMode.Opportunistic, "none", "-", "plaintext", "RFC 7435 §4: opportunistic TLS, unauthenticated"),
        (MtaStsState.None, Dane.None, TlsRequirement.RequireTls, TlsMode.Opportunistic, "none", "RequireTlsUnsatisfiableHost", "-", "RFC 8689 §4.2.1: REQUIRETLS needs DANE or enforced MTA-STS"),
        (MtaStsState.None, Dane.None, TlsRequirement.TlsRequiredNo, TlsMode.Opportunistic, "none (ignored)", "-", "plaintext", "RFC 8689 §5: TLS-Required: No"),
        (MtaStsState.None, Dane.Usable, TlsRequirement.Default, TlsMode.RequiredStartTls, "dane", "-", "fail", "RFC 7672 §2.2: authentic TLSA records make TLS mandatory"),
        (MtaStsState.None, Dane.Usable, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "dane", "-", "fail", "RFC 8689 §4.2.1: DANE satisfies REQUIRETLS"),
        (MtaStsState.None, Dane.Usable, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "dane (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5: TLS-Required: No overrides DANE"),
        (MtaStsState.None, Dane.Unusable, TlsRequirement.Default, TlsMode.RequiredStartTls, "unusable", "-", "fail", "RFC 7672 §2.2, §3.1: unusable records, TLS still mandatory"),
        (MtaStsState.None, Dane.Unusable, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "unusable", "RequireTlsUnsatisfiableHost", "-", "RFC 8689 §4.2.1: unusable records verify nothing"),
        (MtaStsState.None, Dane.Unusable, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "unusable (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5"),
        (MtaStsState.None, Dane.LookupFailed, TlsRequirement.Default, TlsMode.Opportunistic, "none", "HostDnsFailed", "-", "RFC 7672 §2.2: a failed TLSA lookup at a signed zone is not 'no DANE'"),
        (MtaStsState.None, Dane.LookupFailed, TlsRequirement.RequireTls, TlsMode.Opportunistic, "none", "HostDnsFailed", "-", "RFC 7672 §2.2: the DNS failure comes first"),
        (MtaStsState.None, Dane.LookupFailed, TlsRequirement.TlsRequiredNo, TlsMode.Opportunistic, "none (ignored)", "-", "plaintext", "RFC 8689 §5: TLS-Required: No goes on without DANE"),

        // Testing mode reports and never enforces (RFC 8461 §5): the same outcomes as without a policy.
        (MtaStsState.Testing, Dane.None, TlsRequirement.Default, TlsMode.Opportunistic, "none", "-", "plaintext", "RFC 8461 §5: testing"),
        (MtaStsState.Testing, Dane.None, TlsRequirement.RequireTls, TlsMode.Opportunistic, "none", "RequireTlsUnsatisfiableHost", "-", "RFC 8689 §4.2.1: testing MTA-STS does not satisfy REQUIRETLS"),
        (MtaStsState.Testing, Dane.None, TlsRequirement.TlsRequiredNo, TlsMode.Opportunistic, "none (ignored)", "-", "plaintext", "RFC 8689 §5"),
        (MtaStsState.Testing, Dane.Usable, TlsRequirement.Default, TlsMode.RequiredStartTls, "dane", "-", "fail", "RFC 7672 §2.2"),
        (MtaStsState.Testing, Dane.Usable, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "dane", "-", "fail", "RFC 8689 §4.2.1"),
        (MtaStsState.Testing, Dane.Usable, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "dane (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5"),
        (MtaStsState.Testing, Dane.Unusable, TlsRequirement.Default, TlsMode.RequiredStartTls, "unusable", "-", "fail", "RFC 7672 §2.2, §3.1"),
        (MtaStsState.Testing, Dane.Unusable, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "unusable", "RequireTlsUnsatisfiableHost", "-", "RFC 8689 §4.2.1"),
        (MtaStsState.Testing, Dane.Unusable, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "unusable (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5"),
        (MtaStsState.Testing, Dane.LookupFailed, TlsRequirement.Default, TlsMode.Opportunistic, "none", "HostDnsFailed", "-", "RFC 7672 §2.2"),
        (MtaStsState.Testing, Dane.LookupFailed, TlsRequirement.RequireTls, TlsMode.Opportunistic, "none", "HostDnsFailed", "-", "RFC 7672 §2.2"),
        (MtaStsState.Testing, Dane.LookupFailed, TlsRequirement.TlsRequiredNo, TlsMode.Opportunistic, "none (ignored)", "-", "plaintext", "RFC 8689 §5"),

        // Enforce: STARTTLS with a WebPKI-verified certificate (RFC 8461 §5), checked alongside DANE.
        (MtaStsState.Enforce, Dane.None, TlsRequirement.Default, TlsMode.RequiredStartTls, "pkix", "-", "fail", "RFC 8461 §5: enforce"),
        (MtaStsState.Enforce, Dane.None, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "pkix", "-", "fail", "RFC 8689 §4.2.1: enforced MTA-STS satisfies REQUIRETLS"),
        (MtaStsState.Enforce, Dane.None, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "pkix (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5: TLS-Required: No overrides MTA-STS"),
        (MtaStsState.Enforce, Dane.Usable, TlsRequirement.Default, TlsMode.RequiredStartTls, "dane+pkix", "-", "fail", "RFC 7672 §2.2, RFC 8461 §5"),
        (MtaStsState.Enforce, Dane.Usable, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "dane+pkix", "-", "fail", "RFC 8689 §4.2.1"),
        (MtaStsState.Enforce, Dane.Usable, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "dane+pkix (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5"),
        (MtaStsState.Enforce, Dane.Unusable, TlsRequirement.Default, TlsMode.RequiredStartTls, "unusable+pkix", "-", "fail", "RFC 7672 §3.1, RFC 8461 §5"),
        (MtaStsState.Enforce, Dane.Unusable, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "unusable+pkix", "-", "fail", "RFC 8689 §4.2.1: enforced MTA-STS verifies"),
        (MtaStsState.Enforce, Dane.Unusable, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "unusable+pkix (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5"),
        (MtaStsState.Enforce, Dane.LookupFailed, TlsRequirement.Default, TlsMode.RequiredStartTls, "pkix", "HostDnsFailed", "-", "RFC 7672 §2.2"),
        (MtaStsState.Enforce, Dane.LookupFailed, TlsRequirement.RequireTls, TlsMode.RequiredStartTls, "pkix", "HostDnsFailed", "-", "RFC 7672 §2.2"),
        (MtaStsState.Enforce, Dane.LookupFailed, TlsRequirement.TlsRequiredNo, TlsMode.RequiredStartTls, "pkix (ignored)", "-", "fail, retry plaintext", "RFC 8689 §5"),
    ];

    public static TheoryData<MtaStsState, Dane, TlsRequirement, bool, string, string, string> Matrix()
    {
        var data = new TheoryData<MtaStsState, Dane, TlsRequirement, bool, string, string, string>();
        foreach (var row in Rows)
        {
            foreach (var startTlsOffered in new[] { true, false })
            {
                var outcome = startTlsOffered ? $"{row.Mode}, {row.Verification}" : row.WithoutStartTls;
                data.Add(row.Sts, row.Dane, row.Requirement, startTlsOffered, outcome, row.Failure, row.Rule);
            }
        }
        return data;
    }

    [Fact]
    public void The_matrix_has_every_combination_once()
    {
        var combinations = Rows.Select(r => (r.Sts, r.Dane, r.Requirement)).Distinct().Count();

        Assert.Equal(3 * 4 * 3, combinations);
        Assert.Equal(Rows.Length, combinations);
        Assert.Equal(Rows.Length * 2, Matrix().Count);
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Decision_follows_the_rule_of_its_row(MtaStsState sts, Dane dane, TlsRequirement requirement, bool startTlsOffered, string expectedOutcome, string expectedFailure, string rule)
    {
        var verdict = TlsPolicyDecision.Decide(Facts(new MtaStsFacts(sts), dane, requirement));

        Assert.True(expectedFailure == (verdict.Failure?.Kind.ToString() ?? "-"), $"failure {verdict.Failure?.Kind} ({rule})");
        // A host the policy refuses is never dialled, so there is no EHLO to offer STARTTLS.
        var outcome = startTlsOffered ? $"{verdict.Mode}, {Verification(verdict.Plan)}"
            : verdict.Failure is not null ? "-"
            : NoStartTlsOutcome(verdict);
        Assert.True(expectedOutcome == outcome, $"expected {expectedOutcome}, decided {outcome} ({rule})");
    }

    [Fact]
    public void A_failed_mta_sts_lookup_stops_delivery_unless_tls_required_no()
    {
        var failed = new MtaStsFacts(MtaStsState.LookupFailed, LookupError: "timeout fetching policy");

        var refused = TlsPolicyDecision.Decide(Facts(failed, Dane.None, TlsRequirement.Default));
        var overridden = TlsPolicyDecision.Decide(Facts(failed, Dane.None, TlsRequirement.TlsRequiredNo));

        // RFC 8461 §5.1: without a policy the domain might be enforcing; RFC 8689 §5 lets the sender go on.
        Assert.Equal(DeliveryFailureKind.MtaStsUnavailable, refused.Failure?.Kind);
        Assert.Equal(new SmtpReply(451, "4.7.5", "MTA-STS policy lookup failed: timeout fetching policy"), refused.Failure?.Reply);
        Assert.Equal(LocalFailure.Policy, refused.Failure?.Local);
        Assert.True(refused.DomainFailedSession);
        Assert.Null(overridden.Failure);
        Assert.Equal(["mtastspolicy"], overridden.OverriddenByTlsRequiredNo);
    }

    [Theory]
    [InlineData(MtaStsState.Testing, TlsRequirement.Default, null, false)]
    [InlineData(MtaStsState.Enforce, TlsRequirement.Default, DeliveryFailureKind.MxNotInPolicy, true)]
    [InlineData(MtaStsState.Enforce, TlsRequirement.TlsRequiredNo, null, false)]
    public void An_mx_host_outside_the_policy_is_reported_and_skipped_only_when_enforced(MtaStsState state, TlsRequirement requirement, DeliveryFailureKind? expected, bool countsFailure)
    {
        var verdict = TlsPolicyDecision.Decide(Facts(new MtaStsFacts(state, HostMatches: false), Dane.None, requirement));

        // RFC 8461 §4.1: only MX hosts matching the policy; RFC 8460 gets a validation-failure either way.
        Assert.Equal(expected, verdict.Failure?.Kind);
        Assert.Equal(countsFailure, verdict.DomainFailedSession);
        var detail = Assert.Single(verdict.DomainDetails);
        Assert.Equal("mtasts-policy-mx-mismatch", detail.FailureReasonCode);
        Assert.Equal("mx.example.org", detail.ReceivingMxHostname);
    }

    [Fact]
    public void Tlsa_records_do_not_count_when_an_answer_on_the_way_was_not_authentic()
    {
        var facts = Facts(MtaStsFacts.NoPolicy, Dane.Usable, TlsRequirement.Default) with { AddressesAuthentic = false };

        var verdict = TlsPolicyDecision.Decide(facts);

        // RFC 7672 §2.2: DANE needs every answer leading to the host to be DNSSEC-authentic.
        Assert.False(facts.DaneMayApply);
        Assert.Equal(TlsMode.Opportunistic, verdict.Mode);
        Assert.Null(verdict.Plan.DaneRecords);
        Assert.Equal(TlsRptPolicyType.NoPolicyFound, verdict.HostReport?.Policy.Type);
    }

    [Fact]
    public void The_plaintext_retry_uses_no_tls_and_verifies_nothing()
    {
        var verdict = TlsPolicyDecision.Decide(Facts(MtaStsFacts.NoPolicy, Dane.None, TlsRequirement.Default) with { PlaintextRetry = true });

        Assert.Equal(TlsMode.Skip, verdict.Mode);
        Assert.Null(verdict.Plan.DaneRecords);
        Assert.False(verdict.Plan.RequirePkix);
        Assert.Equal(CloudDelivery.Delivery.WithoutStartTls.ContinuePlaintext, verdict.WithoutStartTls);
    }

    [Fact]
    public void Dane_names_follow_rfc_7672_section_3_2_2_for_an_mx_host_with_authentic_cnames()
    {
        var facts = Facts(MtaStsFacts.NoPolicy, Dane.Usable, TlsRequirement.Default) with
        {
            ExpandedRecipientDomain = Domain.Parse("mail.example.net"),
            Tlsa = Gathering(Dane.Usable, Domain.Parse("mx.hosting.example")),
        };

        var verdict = TlsPolicyDecision.Decide(facts);

        // The TLSA base (the expanded MX name), the MX name, the recipient domain and its CNAME target.
        Assert.Equal(["mx.hosting.example", "mx.example.org", "example.org", "mail.example.net"], verdict.Plan.DaneAllowedNames);
        Assert.Equal("mx.hosting.example", verdict.TlsName);
        Assert.Equal(verdict.Plan.DaneAllowedNames, DaneNames.Allowed(true, true, true, Domain.Parse("example.org"), Domain.Parse("mail.example.net"), Domain.Parse("mx.example.org"), Domain.Parse("mx.hosting.example")).Select(d => d.Ascii));
    }

    [Fact]
    public void Tlsrpt_host_results_name_the_dane_state()
    {
        var usable = TlsPolicyDecision.Decide(Facts(MtaStsFacts.NoPolicy, Dane.Usable, TlsRequirement.Default)).HostReport!;
        var unusable = TlsPolicyDecision.Decide(Facts(MtaStsFacts.NoPolicy, Dane.Unusable, TlsRequirement.Default)).HostReport!;
        var bogus = TlsPolicyDecision.Decide(Facts(MtaStsFacts.NoPolicy, Dane.LookupFailed, TlsRequirement.Default) with
        {
            Tlsa = new TlsaGathering { DaneRequired = true, BaseDomain = Domain.Parse("mx.example.org"), Error = new DestinationError("TLSA lookup: SERVFAIL", false, new ExtendedDnsError(6, "")) },
        }).HostReport!;

        // RFC 8460 §4.3.2.1: tlsa-invalid for unusable records, dnssec-invalid for a bogus answer (a failed session).
        Assert.Equal((TlsRptPolicyType.Tlsa, 0, false), (usable.Policy.Type, usable.Details.Count, usable.CountsFailedSession));
        Assert.Equal(["3 1 1 " + new string('0', 64)], usable.Policy.Strings);
        Assert.Equal("all-unusable-records+ignored", Assert.Single(unusable.Details).FailureReasonCode);
        Assert.Equal(TlsRptResultType.DnssecInvalid, Assert.Single(bogus.Details).ResultType);
        Assert.True(bogus.CountsFailedSession);
    }

    [Fact]
    public void The_smarthost_always_requires_starttls_with_webpki()
    {
        var verdict = TlsPolicyDecision.ForSmarthost("relay.example.net", null);

        Assert.Equal(TlsMode.RequiredStartTls, verdict.Mode);
        Assert.True(verdict.Plan.RequirePkix);
        Assert.Null(verdict.Plan.DaneRecords);
        Assert.False(verdict.Plan.IgnoreVerificationErrors);
        Assert.Equal(CloudDelivery.Delivery.WithoutStartTls.Fail, verdict.WithoutStartTls);
        Assert.False(verdict.PlaintextFallbackAllowed);
    }

    private static string NoStartTlsOutcome(TlsPolicyVerdict verdict) => verdict.WithoutStartTls switch
    {
        CloudDelivery.Delivery.WithoutStartTls.ContinuePlaintext => "plaintext",
        _ => verdict.PlaintextFallbackAllowed ? "fail, retry plaintext" : "fail",
    };

    private static string Verification(TlsVerificationPlan plan)
    {
        var checks = new List<string>();
        if (plan.DaneRecords is { } records)
        {
            checks.Add(records.Count > 0 ? "dane" : "unusable");
        }
        if (plan.RequirePkix)
        {
            checks.Add("pkix");
        }
        var text = checks.Count == 0 ? "none" : string.Join("+", checks);
        return plan.IgnoreVerificationErrors ? $"{text} (ignored)" : text;
    }

    private static TlsPolicyFacts Facts(MtaStsFacts mtaSts, Dane dane, TlsRequirement requirement) => new()
    {
        HostDisplay = "mx.example.org",
        HostName = Domain.Parse("mx.example.org"),
        RecipientDomain = Domain.Parse("example.org"),
        ExpandedRecipientDomain = Domain.Parse("example.org"),
        HaveMx = true,
        RecipientDomainAuthentic = true,
        ExpandedRecipientDomainAuthentic = true,
        AddressesAuthentic = true,
        HostExpansionAuthentic = true,
        Tlsa = Gathering(dane, Domain.Parse("mx.example.org")),
        MtaSts = mtaSts,
        Requirement = requirement,
    };

    private static TlsaGathering Gathering(Dane dane, Domain baseDomain)
    {
        TlsaRecord usable = new(3, 1, 1, new byte[32]);
        TlsaRecord pkixEe = new(1, 1, 1, new byte[32]); // PKIX-EE: unusable for SMTP (RFC 7672 §3.1.3)
        return dane switch
        {
            Dane.Usable => new TlsaGathering { DaneRequired = true, Records = DaneTlsaRecords.Usable([usable]), AllRecords = [usable], BaseDomain = baseDomain },
            Dane.Unusable => new TlsaGathering { DaneRequired = true, Records = DaneTlsaRecords.Usable([pkixEe]), AllRecords = [pkixEe], BaseDomain = baseDomain },
            Dane.LookupFailed => new TlsaGathering { DaneRequired = true, BaseDomain = baseDomain, Error = new DestinationError($"TLSA lookup for _25._tcp.{baseDomain}: SERVFAIL", false) },
            _ => new TlsaGathering { DaneRequired = false, BaseDomain = baseDomain },
        };
    }
}
