using CloudDelivery.Addressing;
using CloudDelivery.Dane;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.Tls;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// The operator's TLS level over the published policies, without sockets: each level × {no TLSA, usable
/// TLSA, MTA-STS enforce, REQUIRETLS, TLS-Required: No on a DANE host} × STARTTLS offered or not. The
/// operator raises the floor and never lowers DANE, MTA-STS or REQUIRETLS; TLS-Required: No relaxes only
/// the published policies.
/// </summary>
public class OperatorTlsPolicyMatrixTests
{
    public enum Situation { NoTlsa, UsableTlsa, MtaStsEnforce, RequireTls, TlsRequiredNoOnDane }

    // As TlsPolicyMatrixTests: verification "none", "pkix", "dane", "(ignored)"; failure "-" or a kind;
    // without STARTTLS "plaintext", "fail", "fail, retry plaintext", or "-" when the host is never dialled.
    // Operator: "yes" when a TLS failure on the connection is the operator's policy failing.
    private static readonly (OperatorTlsLevel Level, Situation Situation, TlsMode Mode, string Verification, string Failure, string WithoutStartTls, string Operator, string Rule)[] Rows =
    [
        (OperatorTlsLevel.None, Situation.NoTlsa, TlsMode.Skip, "none", "-", "plaintext", "no", "none: no STARTTLS for a broken receiver"),
        (OperatorTlsLevel.None, Situation.UsableTlsa, TlsMode.RequiredStartTls, "dane", "-", "fail", "no", "none never lowers DANE (RFC 7672 §2.2)"),
        (OperatorTlsLevel.None, Situation.MtaStsEnforce, TlsMode.RequiredStartTls, "pkix", "-", "fail", "no", "none never lowers MTA-STS enforce (RFC 8461 §5)"),
        (OperatorTlsLevel.None, Situation.RequireTls, TlsMode.Opportunistic, "none", "RequireTlsUnsatisfiableHost", "-", "no", "none never lowers REQUIRETLS (RFC 8689 §4.2.1)"),
        (OperatorTlsLevel.None, Situation.TlsRequiredNoOnDane, TlsMode.RequiredStartTls, "dane (ignored)", "-", "fail, retry plaintext", "no", "DANE applies; TLS-Required: No relaxes it (RFC 8689 §5)"),

        (OperatorTlsLevel.May, Situation.NoTlsa, TlsMode.Opportunistic, "none", "-", "plaintext", "no", "may: the default"),
        (OperatorTlsLevel.May, Situation.UsableTlsa, TlsMode.RequiredStartTls, "dane", "-", "fail", "no", "may: DANE as without a policy"),
        (OperatorTlsLevel.May, Situation.MtaStsEnforce, TlsMode.RequiredStartTls, "pkix", "-", "fail", "no", "may: MTA-STS as without a policy"),
        (OperatorTlsLevel.May, Situation.RequireTls, TlsMode.Opportunistic, "none", "RequireTlsUnsatisfiableHost", "-", "no", "may: REQUIRETLS as without a policy"),
        (OperatorTlsLevel.May, Situation.TlsRequiredNoOnDane, TlsMode.RequiredStartTls, "dane (ignored)", "-", "fail, retry plaintext", "no", "may: TLS-Required: No as without a policy"),

        (OperatorTlsLevel.Encrypt, Situation.NoTlsa, TlsMode.RequiredStartTls, "none", "-", "fail", "yes", "encrypt: STARTTLS required, any certificate, no plaintext"),
        (OperatorTlsLevel.Encrypt, Situation.UsableTlsa, TlsMode.RequiredStartTls, "dane", "-", "fail", "no", "encrypt keeps DANE's verification"),
        (OperatorTlsLevel.Encrypt, Situation.MtaStsEnforce, TlsMode.RequiredStartTls, "pkix", "-", "fail", "no", "encrypt keeps MTA-STS's verification"),
        (OperatorTlsLevel.Encrypt, Situation.RequireTls, TlsMode.RequiredStartTls, "none", "RequireTlsUnsatisfiableHost", "-", "no", "encrypt does not verify, so REQUIRETLS still refuses"),
        (OperatorTlsLevel.Encrypt, Situation.TlsRequiredNoOnDane, TlsMode.RequiredStartTls, "dane (ignored)", "-", "fail", "yes", "the operator's encrypt holds over TLS-Required: No"),

        (OperatorTlsLevel.Verify, Situation.NoTlsa, TlsMode.RequiredStartTls, "pkix", "-", "fail", "yes", "verify: WebPKI for the MX host name"),
        (OperatorTlsLevel.Verify, Situation.UsableTlsa, TlsMode.RequiredStartTls, "dane", "-", "fail", "no", "verify: DANE when the host has usable TLSA"),
        (OperatorTlsLevel.Verify, Situation.MtaStsEnforce, TlsMode.RequiredStartTls, "pkix", "-", "fail", "no", "verify: MTA-STS already verifies"),
        (OperatorTlsLevel.Verify, Situation.RequireTls, TlsMode.RequiredStartTls, "pkix", "RequireTlsUnsatisfiableHost", "-", "no", "REQUIRETLS wants DANE or MTA-STS, not the operator's say (RFC 8689 §4.2.1)"),
        (OperatorTlsLevel.Verify, Situation.TlsRequiredNoOnDane, TlsMode.RequiredStartTls, "dane", "-", "fail", "yes", "the operator's verify holds over TLS-Required: No"),

        (OperatorTlsLevel.DaneOnly, Situation.NoTlsa, TlsMode.Opportunistic, "none", "OperatorTlsPolicy", "-", "yes", "dane-only: a host without usable TLSA is not used"),
        (OperatorTlsLevel.DaneOnly, Situation.UsableTlsa, TlsMode.RequiredStartTls, "dane", "-", "fail", "no", "dane-only: DANE"),
        (OperatorTlsLevel.DaneOnly, Situation.MtaStsEnforce, TlsMode.RequiredStartTls, "pkix", "OperatorTlsPolicy", "-", "yes", "dane-only: MTA-STS is not DANE"),
        (OperatorTlsLevel.DaneOnly, Situation.RequireTls, TlsMode.Opportunistic, "none", "RequireTlsUnsatisfiableHost", "-", "no", "REQUIRETLS refuses first"),
        (OperatorTlsLevel.DaneOnly, Situation.TlsRequiredNoOnDane, TlsMode.RequiredStartTls, "dane", "-", "fail", "yes", "the operator's dane-only holds over TLS-Required: No"),
    ];

    public static TheoryData<OperatorTlsLevel, Situation, bool, string, string, string, string> Matrix()
    {
        var data = new TheoryData<OperatorTlsLevel, Situation, bool, string, string, string, string>();
        foreach (var row in Rows)
        {
            foreach (var startTlsOffered in new[] { true, false })
            {
                var outcome = startTlsOffered ? $"{row.Mode}, {row.Verification}" : row.WithoutStartTls;
                data.Add(row.Level, row.Situation, startTlsOffered, outcome, row.Failure, row.Operator, row.Rule);
            }
        }
        return data;
    }

    [Fact]
    public void The_matrix_has_every_level_and_situation_once()
    {
        Assert.Equal(5 * 5, Rows.Select(r => (r.Level, r.Situation)).Distinct().Count());
        Assert.Equal(Rows.Length, Rows.Select(r => (r.Level, r.Situation)).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Operator_level_follows_the_rule_of_its_row(OperatorTlsLevel level, Situation situation, bool startTlsOffered, string expectedOutcome, string expectedFailure, string expectedOperator, string rule)
    {
        var verdict = TlsPolicyDecision.Decide(Facts(situation) with { Operator = Match(level) });

        Assert.True(expectedFailure == (verdict.Failure?.Kind.ToString() ?? "-"), $"failure {verdict.Failure?.Kind} ({rule})");
        var outcome = startTlsOffered ? $"{verdict.Mode}, {Verification(verdict.Plan)}"
            : verdict.Failure is not null ? "-"
            : verdict.WithoutStartTls == WithoutStartTls.ContinuePlaintext ? "plaintext"
            : verdict.PlaintextFallbackAllowed ? "fail, retry plaintext" : "fail";
        Assert.True(expectedOutcome == outcome, $"expected {expectedOutcome}, decided {outcome} ({rule})");
        Assert.True(expectedOperator == (verdict.OperatorDecisive ? "yes" : "no"), $"operator decisive {verdict.OperatorDecisive} ({rule})");
        Assert.Same(verdict.Operator?.Policy, Match(level).Policy);
        Assert.NotNull(verdict.OperatorEffect);
    }

    [Fact]
    public void Without_an_operator_entry_the_decision_is_unchanged()
    {
        foreach (var situation in Enum.GetValues<Situation>())
        {
            var verdict = TlsPolicyDecision.Decide(Facts(situation));

            Assert.Null(verdict.Operator);
            Assert.False(verdict.OperatorDecisive);
        }
    }

    [Fact]
    public void Verify_with_match_names_checks_webpki_for_those_names_unless_mta_sts_is_enforced()
    {
        var entry = new OperatorTlsMatch(new OperatorTlsPolicy(OperatorTlsSelector.RecipientDomain, "example.org", OperatorTlsLevel.Verify, ["mail.example.net", ".example.net"], "test"), "example.org");

        var plain = TlsPolicyDecision.Decide(Facts(Situation.NoTlsa) with { Operator = entry });
        var enforced = TlsPolicyDecision.Decide(Facts(Situation.MtaStsEnforce) with { Operator = entry });

        Assert.Equal(["mail.example.net", ".example.net"], plain.Plan.PkixAllowedNames);
        Assert.Equal(["mail.example.net", ".example.net"], plain.ExpectedNames);
        // RFC 8461 §4.2: the enforced policy's certificate must carry the MX host name; match= cannot widen that.
        Assert.Empty(enforced.Plan.PkixAllowedNames);
        Assert.Equal(["mx.example.org"], enforced.ExpectedNames);
    }

    [Fact]
    public void A_tls_failure_where_the_operator_required_tls_names_the_policy_and_the_reason()
    {
        var encrypt = TlsPolicyDecision.Decide(Facts(Situation.NoTlsa) with { Operator = Match(OperatorTlsLevel.Encrypt) });
        var verify = TlsPolicyDecision.Decide(Facts(Situation.NoTlsa) with { Operator = Match(OperatorTlsLevel.Verify) });
        var notOffered = DeliveryFailure.FromSession(new SmtpSessionException(SmtpSessionFailure.StartTlsNotOffered, "server does not offer STARTTLS, which is required", "not advertised", null));
        var badCertificate = DeliveryFailure.FromSession(new SmtpSessionException(SmtpSessionFailure.TlsHandshakeFailed, "TLS handshake failed: WebPKI verification failed: certificate is not for mx.example.org", "handshake failed", null));

        var encryptFailure = TlsPolicyDecision.ExplainFailure(encrypt, notOffered);
        var verifyFailure = TlsPolicyDecision.ExplainFailure(verify, badCertificate);

        Assert.Equal(new SmtpReply(451, "4.7.10", "TLS required by this service's policy for example.org (encrypt): mx.example.org did not offer STARTTLS"), encryptFailure.Reply);
        Assert.Equal(new SmtpReply(451, "4.7.10", "TLS required by this service's policy for example.org (verify): the certificate of mx.example.org is not valid for mx.example.org: WebPKI verification failed: certificate is not for mx.example.org"), verifyFailure.Reply);
        // Temporary like Postfix's deferral; classified as a TLS policy failure.
        Assert.Equal(RecipientStatus.Temporary, encryptFailure.Status);
        Assert.Equal(LocalFailure.Tls, encryptFailure.Local);
        Assert.Equal(BounceCategory.TlsPolicy, BounceClassification.Of(encryptFailure.Reply, encryptFailure.Local));
        // Where DANE made TLS mandatory anyway, the failure is DANE's and keeps its own words.
        var dane = TlsPolicyDecision.Decide(Facts(Situation.UsableTlsa) with { Operator = Match(OperatorTlsLevel.Encrypt) });
        Assert.Same(notOffered, TlsPolicyDecision.ExplainFailure(dane, notOffered));
    }

    [Fact]
    public void Dane_only_refuses_a_host_without_usable_tlsa_in_a_senders_words()
    {
        var verdict = TlsPolicyDecision.Decide(Facts(Situation.NoTlsa) with { Operator = Match(OperatorTlsLevel.DaneOnly) });

        Assert.Equal(new SmtpReply(451, "4.7.10", "TLS required by this service's policy for example.org (dane-only): mx.example.org has no usable DANE TLSA records"), verdict.Failure?.Reply);
        Assert.False(verdict.Failure!.Permanent);
    }

    private static OperatorTlsMatch Match(OperatorTlsLevel level) => Matches[level];

    private static readonly Dictionary<OperatorTlsLevel, OperatorTlsMatch> Matches = Enum.GetValues<OperatorTlsLevel>()
        .ToDictionary(l => l, l => new OperatorTlsMatch(new OperatorTlsPolicy(OperatorTlsSelector.RecipientDomain, "example.org", l, [], "test"), "example.org"));

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

    private static TlsPolicyFacts Facts(Situation situation)
    {
        TlsaRecord usable = new(3, 1, 1, new byte[32]);
        var host = Domain.Parse("mx.example.org");
        var dane = situation is Situation.UsableTlsa or Situation.TlsRequiredNoOnDane;
        return new TlsPolicyFacts
        {
            HostDisplay = "mx.example.org",
            HostName = host,
            RecipientDomain = Domain.Parse("example.org"),
            ExpandedRecipientDomain = Domain.Parse("example.org"),
            HaveMx = true,
            RecipientDomainAuthentic = true,
            ExpandedRecipientDomainAuthentic = true,
            AddressesAuthentic = true,
            HostExpansionAuthentic = true,
            Tlsa = dane
                ? new TlsaGathering { DaneRequired = true, Records = DaneTlsaRecords.Usable([usable]), AllRecords = [usable], BaseDomain = host }
                : new TlsaGathering { DaneRequired = false, BaseDomain = host },
            MtaSts = situation == Situation.MtaStsEnforce ? new MtaStsFacts(MtaStsState.Enforce) : MtaStsFacts.NoPolicy,
            Requirement = situation switch
            {
                Situation.RequireTls => TlsRequirement.RequireTls,
                Situation.TlsRequiredNoOnDane => TlsRequirement.TlsRequiredNo,
                _ => TlsRequirement.Default,
            },
        };
    }
}
