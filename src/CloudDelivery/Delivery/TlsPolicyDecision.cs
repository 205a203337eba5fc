using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Dane;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.Tls;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Delivery;

/// <summary>What a connection does when the server's EHLO does not offer STARTTLS (RFC 3207).</summary>
public enum WithoutStartTls
{
    /// <summary>Go on in plaintext: opportunistic TLS (RFC 7435 §4), reported as starttls-not-supported.</summary>
    ContinuePlaintext,

    /// <summary>End the attempt as a TLS failure (DANE, RFC 7672 §2.2; enforced MTA-STS, RFC 8461 §5).</summary>
    Fail,
}

/// <summary>The TLSRPT result for one host (RFC 8460 §4.4), described rather than counted.</summary>
/// <param name="Policy">The policy type, domain and strings.</param>
/// <param name="Details">Failure details found before connecting.</param>
/// <param name="CountsFailedSession">A DNSSEC failure: the session counts as failed for the domain and the host now.</param>
public sealed record TlsRptHostReport(TlsRptPolicy Policy, IReadOnlyList<TlsRptFailureDetails> Details, bool CountsFailedSession)
{
    /// <summary>A fresh result carrying the details; the failed session is counted by <see cref="TlsPolicyDecision.Apply"/>.</summary>
    public TlsRptResult ToResult()
    {
        var result = new TlsRptResult(Policy);
        result.Add(0, 0, Details);
        return result;
    }
}

/// <summary>The decision for one connection to one host.</summary>
public sealed record TlsPolicyVerdict
{
    /// <summary>How STARTTLS is used.</summary>
    public required TlsMode Mode { get; init; }

    /// <summary>How the certificate is verified.</summary>
    public required TlsVerificationPlan Plan { get; init; }

    /// <summary>The name sent as SNI and checked by WebPKI: the first DANE name, else the host.</summary>
    public required string TlsName { get; init; }

    /// <summary>The recipient domain's MTA-STS policy is enforced for this host.</summary>
    public bool EnforcedMtaSts { get; init; }

    /// <summary>DANE applies to this host (authentic TLSA records, or an authentic lookup that failed).</summary>
    public bool Dane { get; init; }

    /// <summary>The TLSRPT host result; null when an address lookup failed without a DNSSEC reason.</summary>
    public TlsRptHostReport? HostReport { get; init; }

    /// <summary>Why no connection may be made; null when one may.</summary>
    /// <remarks>
    /// One of <see cref="DeliveryFailureKind.MtaStsUnavailable"/>, <see cref="DeliveryFailureKind.MxNotInPolicy"/>,
    /// <see cref="DeliveryFailureKind.RequireTlsUnsatisfiableHost"/> or <see cref="DeliveryFailureKind.HostDnsFailed"/>
    /// (a failed TLSA lookup). None is permanent for one host: REQUIRETLS becomes permanent only when every
    /// host refuses it (RFC 8689 §4.2.1), which delivery decides over all hosts.
    /// </remarks>
    public DeliveryFailure? Failure { get; init; }

    /// <summary>
    /// A TLS failure on this connection may be retried in plaintext on the same host (RFC 7435 §6): only
    /// without DANE and enforced MTA-STS, or whenever the sender said TLS-Required: No (RFC 8689 §5).
    /// </summary>
    public bool PlaintextFallbackAllowed { get; init; }

    /// <summary>Rules that TLS-Required: No overrode, as telemetry names them ("mtastspolicy", "mtastsmx", "badtlsa").</summary>
    public IReadOnlyList<string> OverriddenByTlsRequiredNo { get; init; } = [];

    /// <summary>Failure details for the recipient domain's result found before connecting (an MX outside the policy).</summary>
    public IReadOnlyList<TlsRptFailureDetails> DomainDetails { get; init; } = [];

    /// <summary>The policy's refusal counts as one failed session for the recipient domain (RFC 8460 §4.2).</summary>
    public bool DomainFailedSession { get; init; }

    /// <summary>The operator's policy entry for this host, whether or not it changed anything; null when none applies.</summary>
    public OperatorTlsMatch? Operator { get; init; }

    /// <summary>What the operator's entry did here, in words for probe ("raised to encrypt", "ignored: DANE applies").</summary>
    public string? OperatorEffect { get; init; }

    /// <summary>
    /// TLS (or its verification) is required only because of the operator's entry: a TLS failure on this
    /// connection is then the operator's policy failing, and says so (<see cref="TlsPolicyDecision.ExplainFailure"/>).
    /// </summary>
    public bool OperatorDecisive { get; init; }

    /// <summary>The names a WebPKI certificate must carry when it is verified: the operator's match= names, else the TLS name.</summary>
    public IReadOnlyList<string> ExpectedNames => Plan.PkixAllowedNames.Count > 0 ? Plan.PkixAllowedNames : [TlsName];

    /// <summary>What the session does when the server does not offer STARTTLS.</summary>
    public WithoutStartTls WithoutStartTls => Mode == TlsMode.RequiredStartTls ? WithoutStartTls.Fail : WithoutStartTls.ContinuePlaintext;
}

/// <summary>
/// The one TLS-policy decision of delivery, smarthost and probe: which TLS a connection needs and how its
/// certificate is verified, from facts gathered beforehand. Pure: no DNS, no sockets, no clock. Delivery
/// calls its steps where they fall between lookups (<see cref="ForRecipientDomain"/> before the host loop,
/// <see cref="ForMxHost"/> before a host's addresses, <see cref="ForConnection"/> after its TLSA records);
/// <see cref="Decide"/> runs them in that order for one host.
/// </summary>
public static class TlsPolicyDecision
{
    /// <summary>All three steps for one host: the first refusal wins, the rules overridden and the domain's details add up.</summary>
    public static TlsPolicyVerdict Decide(TlsPolicyFacts facts)
    {
        var domain = ForRecipientDomain(facts.MtaSts, facts.Requirement);
        var host = ForMxHost(facts.MtaSts, facts.HostDisplay, facts.RecipientDomain?.ToString() ?? facts.HostDisplay, facts.Requirement);
        var connection = ForConnection(facts);
        var earlier = domain ?? host;
        return connection with
        {
            Failure = domain?.Failure ?? host?.Failure ?? connection.Failure,
            OverriddenByTlsRequiredNo = [.. domain?.OverriddenByTlsRequiredNo ?? [], .. host?.OverriddenByTlsRequiredNo ?? [], .. connection.OverriddenByTlsRequiredNo],
            DomainDetails = [.. host?.DomainDetails ?? []],
            DomainFailedSession = earlier?.Failure is not null,
            HostReport = earlier?.Failure is null ? connection.HostReport : null,
        };
    }

    /// <summary>
    /// The domain-wide step: an MTA-STS lookup that failed without a cached policy stops delivery, since
    /// the policy might be "enforce" (RFC 8461 §5.1); TLS-Required: No lets it go on (RFC 8689 §5).
    /// Null when nothing is decided here.
    /// </summary>
    public static TlsPolicyVerdict? ForRecipientDomain(MtaStsFacts mtaSts, TlsRequirement requirement)
    {
        if (mtaSts.State != MtaStsState.LookupFailed)
        {
            return null;
        }
        if (requirement == TlsRequirement.TlsRequiredNo)
        {
            return Nothing() with { OverriddenByTlsRequiredNo = ["mtastspolicy"] };
        }
        return Nothing() with
        {
            Failure = DeliveryFailure.Of(DeliveryFailureKind.MtaStsUnavailable, $"MTA-STS policy lookup failed: {mtaSts.LookupError}"),
            DomainFailedSession = true,
        };
    }

    /// <summary>
    /// The per-host step before any lookup for the host: with a policy in force only matching MX hosts are
    /// used (RFC 8461 §4.1). A mismatch is reported in testing and enforce mode; it skips the host only in
    /// enforce mode, and not for TLS-Required: No. Null when the host matches.
    /// </summary>
    public static TlsPolicyVerdict? ForMxHost(MtaStsFacts mtaSts, string hostDisplay, string recipientDomain, TlsRequirement requirement)
    {
        if (mtaSts.State is not (MtaStsState.Testing or MtaStsState.Enforce) || mtaSts.HostMatches)
        {
            return null;
        }
        // RFC 8460 has no result type for this, so validation-failure with a telling reason code.
        var mismatch = new TlsRptFailureDetails { ResultType = TlsRptResultType.ValidationFailure, FailureReasonCode = "mtasts-policy-mx-mismatch", ReceivingMxHostname = hostDisplay };
        var verdict = Nothing() with { DomainDetails = [mismatch] };
        if (mtaSts.State == MtaStsState.Testing)
        {
            return verdict;
        }
        if (requirement == TlsRequirement.TlsRequiredNo)
        {
            return verdict with { OverriddenByTlsRequiredNo = ["mtastsmx"] };
        }
        return verdict with
        {
            Failure = DeliveryFailure.Of(DeliveryFailureKind.MxNotInPolicy, $"MX host {hostDisplay} does not match the enforced MTA-STS policy of {recipientDomain}"),
            DomainFailedSession = true,
        };
    }

    /// <summary>
    /// The connection step, once the host's addresses and TLSA records are known: DANE when the host has
    /// authentic TLSA records (RFC 7672 §2.2), WebPKI when MTA-STS is enforced (RFC 8461 §5), REQUIRETLS
    /// only with one of them (RFC 8689 §4.2.1), and failures ignored for TLS-Required: No (RFC 8689 §5).
    /// </summary>
    public static TlsPolicyVerdict ForConnection(TlsPolicyFacts facts)
    {
        var enforce = facts.MtaSts.State == MtaStsState.Enforce;
        var tlsRequiredNo = facts.Requirement == TlsRequirement.TlsRequiredNo;
        if (facts.PlaintextRetry)
        {
            return PlaintextRetry(facts, enforce, tlsRequiredNo);
        }
        var hostNames = facts.HostName is null ? [] : new[] { facts.HostName.Ascii };
        var (report, dane) = HostReport(facts);
        var mode = enforce ? TlsMode.RequiredStartTls : TlsMode.Opportunistic;
        IReadOnlyList<Dns.TlsaRecord>? daneRecords = null;
        var names = hostNames;
        DeliveryFailure? failure = null;
        IReadOnlyList<string> overridden = [];
        switch (facts.DaneMayApply ? facts.TlsaState : TlsaState.None)
        {
            case TlsaState.Usable or TlsaState.OnlyUnusable:
                // RFC 7672 §2.2: authentic TLSA records make STARTTLS mandatory, usable or not.
                mode = TlsMode.RequiredStartTls;
                daneRecords = facts.Tlsa!.Records;
                names = facts.DaneNamesFor(facts.Tlsa.BaseDomain).Select(n => n.Ascii).ToArray();
                break;
            case TlsaState.LookupFailed when tlsRequiredNo:
                (dane, overridden) = (false, ["badtlsa"]);
                break;
            case TlsaState.LookupFailed:
                failure = DeliveryFailure.Of(DeliveryFailureKind.HostDnsFailed, facts.Tlsa!.Error!.Message);
                break;
        }
        if (failure is null && facts.AddressesFound && facts.Requirement == TlsRequirement.RequireTls && daneRecords is not { Count: > 0 } && !enforce)
        {
            // RFC 8689 §4.2.1: REQUIRETLS needs a verified TLS connection: DANE or an enforced MTA-STS policy.
            failure = DeliveryFailure.Of(DeliveryFailureKind.RequireTlsUnsatisfiableHost, $"REQUIRETLS: {facts.HostDisplay} has neither DANE nor an enforced MTA-STS policy");
        }
        var verdict = new TlsPolicyVerdict
        {
            Mode = mode,
            Plan = Plan(daneRecords, names, requirePkix: enforce, tlsRequiredNo, facts.ExtraTrustRoots),
            TlsName = names.Length > 0 ? names[0] : facts.HostDisplay,
            EnforcedMtaSts = enforce,
            Dane = dane,
            HostReport = report,
            Failure = failure,
            // RFC 7435 §6: an old server that only speaks broken TLS still gets mail when nothing requires TLS.
            PlaintextFallbackAllowed = (!enforce && !dane) || tlsRequiredNo,
            OverriddenByTlsRequiredNo = overridden,
        };
        if (facts.Operator is not { } entry)
        {
            return verdict;
        }
        var withOperator = WithOperatorPolicy(verdict, entry, facts);
        // A host REQUIRETLS refuses is never dialled: that refusal is the message's, not the operator's.
        return withOperator.Failure?.Kind == DeliveryFailureKind.RequireTlsUnsatisfiableHost ? withOperator with { OperatorDecisive = false } : withOperator;
    }

    /// <summary>
    /// The operator's level over what the published policies decided, as Postfix's smtp_tls_policy_maps:
    /// it raises the floor and never lowers it. "none" skips STARTTLS only where neither DANE, an enforced
    /// MTA-STS policy nor REQUIRETLS asks for TLS. TLS-Required: No (RFC 8689 §5) lets the sender set aside
    /// the recipient domain's published policies, not this service's own: an operator's encrypt, verify or
    /// dane-only for a destination is a contract with that receiver (or, for a sender domain, with that
    /// customer), so it still holds.
    /// </summary>
    private static TlsPolicyVerdict WithOperatorPolicy(TlsPolicyVerdict verdict, OperatorTlsMatch entry, TlsPolicyFacts facts)
    {
        var tlsRequiredNo = facts.Requirement == TlsRequirement.TlsRequiredNo;
        var usableDane = verdict.Plan.DaneRecords is { Count: > 0 };
        // TLS is already mandatory, or verified, for reasons of the recipient domain's own.
        var tlsRequired = verdict.Mode == TlsMode.RequiredStartTls && !tlsRequiredNo;
        var verified = (usableDane || verdict.EnforcedMtaSts) && !tlsRequiredNo;
        verdict = verdict with { Operator = entry };
        if (verdict.Failure is not null && verdict.Failure.Kind != DeliveryFailureKind.RequireTlsUnsatisfiableHost)
        {
            return verdict with { OperatorEffect = "not reached: " + verdict.Failure.Reply.Text };
        }
        switch (entry.Level)
        {
            case OperatorTlsLevel.None:
                if (verdict.Dane || verdict.EnforcedMtaSts || facts.Requirement == TlsRequirement.RequireTls)
                {
                    var why = verdict.Dane ? "DANE applies" : verdict.EnforcedMtaSts ? "MTA-STS is enforced" : "the message requires TLS (REQUIRETLS)";
                    return verdict with { OperatorEffect = $"ignored: {why}" };
                }
                return verdict with
                {
                    Mode = TlsMode.Skip,
                    Plan = Plan(null, [], requirePkix: false, ignoreErrors: false, facts.ExtraTrustRoots),
                    PlaintextFallbackAllowed = false,
                    OperatorEffect = "STARTTLS not used",
                };
            case OperatorTlsLevel.May:
                return verdict with { OperatorEffect = "opportunistic, as without a policy" };
            case OperatorTlsLevel.Encrypt:
                return verdict with
                {
                    Mode = TlsMode.RequiredStartTls,
                    PlaintextFallbackAllowed = false,
                    OperatorDecisive = !tlsRequired,
                    OperatorEffect = tlsRequired ? "already required by the domain's policy" : "STARTTLS required, any certificate",
                };
            case OperatorTlsLevel.Verify when usableDane:
                return verdict with
                {
                    Mode = TlsMode.RequiredStartTls,
                    Plan = verdict.Plan.WithErrorsEnforced(),
                    PlaintextFallbackAllowed = false,
                    OperatorDecisive = !verified,
                    OperatorEffect = verified ? "already verified by DANE" : "verified by DANE",
                };
            case OperatorTlsLevel.Verify:
                // WebPKI for the expected names; an enforced MTA-STS policy keeps the MX host name it requires (RFC 8461 §4.2).
                var expected = entry.Policy.MatchNames.Count > 0 && !verdict.EnforcedMtaSts ? entry.Policy.MatchNames : [];
                return verdict with
                {
                    Mode = TlsMode.RequiredStartTls,
                    Plan = verdict.Plan.WithPkixRequired(expected),
                    PlaintextFallbackAllowed = false,
                    OperatorDecisive = !verified,
                    OperatorEffect = verified ? "already verified by MTA-STS" : $"WebPKI required for {string.Join(", ", expected.Count > 0 ? expected : [verdict.TlsName])}",
                };
            default:
                if (!usableDane)
                {
                    var failure = verdict.Failure ?? DeliveryFailure.Of(DeliveryFailureKind.OperatorTlsPolicy, $"{Preamble(entry)}: {facts.HostDisplay} has no usable DANE TLSA records");
                    return verdict with { Failure = failure, OperatorDecisive = true, OperatorEffect = "host not used: no usable DANE TLSA records" };
                }
                return verdict with
                {
                    Mode = TlsMode.RequiredStartTls,
                    Plan = verdict.Plan.WithErrorsEnforced(),
                    PlaintextFallbackAllowed = false,
                    OperatorDecisive = !verified,
                    OperatorEffect = "verified by DANE",
                };
        }
    }

    /// <summary>
    /// A session's TLS failure on a connection where only the operator's policy required TLS, in words a
    /// sender understands ("TLS required by this service's policy for example.com (encrypt): mx.example.com
    /// did not offer STARTTLS"); any other failure is returned unchanged.
    /// </summary>
    public static DeliveryFailure ExplainFailure(TlsPolicyVerdict verdict, DeliveryFailure failure)
    {
        if (!verdict.OperatorDecisive || verdict.Operator is not { } entry || !failure.IsTlsFailure)
        {
            return failure;
        }
        var host = verdict.TlsName;
        var reason = failure.Reply.Text.StartsWith(HandshakePrefix, StringComparison.Ordinal) ? failure.Reply.Text[HandshakePrefix.Length..] : failure.Reply.Text;
        var what = failure.SessionFailure switch
        {
            SmtpSessionFailure.StartTlsNotOffered => $"{host} did not offer STARTTLS",
            SmtpSessionFailure.StartTlsRefused => $"{host} refused STARTTLS: {failure.Reply}",
            _ when entry.Level >= OperatorTlsLevel.Verify => $"the certificate of {host} is not valid for {string.Join(", ", verdict.ExpectedNames)}: {reason}",
            _ => $"TLS with {host} failed: {reason}",
        };
        return DeliveryFailure.Of(DeliveryFailureKind.OperatorTlsPolicy, $"{Preamble(entry)}: {what}") with { Tls = failure.Tls, SessionFailure = failure.SessionFailure };
    }

    private const string HandshakePrefix = "TLS handshake failed: ";

    private static string Preamble(OperatorTlsMatch entry) => $"TLS required by this service's policy for {entry.AppliesTo} ({entry.LevelName})";

    /// <summary>
    /// The smarthost's rule: the relay is the operator's choice, so STARTTLS with a WebPKI-verified
    /// certificate for its name is always required (RFC 8314 §3 asks as much of submission), and the
    /// recipient domain's policies play no part.
    /// </summary>
    public static TlsPolicyVerdict ForSmarthost(string smarthost, X509Certificate2Collection? extraTrustRoots) => new()
    {
        Mode = TlsMode.RequiredStartTls,
        Plan = Plan(null, [], requirePkix: true, ignoreErrors: false, extraTrustRoots),
        TlsName = smarthost,
        HostReport = new TlsRptHostReport(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = smarthost }, [], false),
    };

    /// <summary>
    /// Records what the decision found before connecting in the recipient domain's and the host's TLSRPT
    /// results (RFC 8460 §4.2), and returns the host's result (a scratch one when there is none).
    /// </summary>
    public static TlsRptResult Apply(TlsPolicyVerdict verdict, TlsRptResult domainResult)
    {
        if (verdict.DomainDetails.Count > 0)
        {
            domainResult.Add(0, 0, verdict.DomainDetails);
        }
        var hostResult = verdict.HostReport?.ToResult();
        if (verdict.DomainFailedSession || verdict.HostReport?.CountsFailedSession == true)
        {
            domainResult.Add(0, 1);
        }
        if (verdict.HostReport?.CountsFailedSession == true)
        {
            hostResult!.Add(0, 1);
        }
        return hostResult ?? new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = verdict.TlsName });
    }

    /// <summary>
    /// The TLSRPT host result before connecting, and whether DANE applies. A DNSSEC failure is counted as a
    /// failed session, reported as "dnssec-invalid" only for TLSA (RFC 8460 §4.3.2.1).
    /// </summary>
    private static (TlsRptHostReport? Report, bool Dane) HostReport(TlsPolicyFacts facts)
    {
        if (!facts.DaneMayApply)
        {
            if (facts.AddressLookupError is { IsAuthenticationFailure: true } ede)
            {
                var detail = new TlsRptFailureDetails { ResultType = TlsRptResultType.ValidationFailure, FailureReasonCode = ede.TlsRptReasonCode };
                return (new TlsRptHostReport(new TlsRptPolicy { Type = TlsRptPolicyType.Tlsa, Domain = facts.HostDisplay }, [detail], true), false);
            }
            return (facts.AddressesFound ? NoPolicy(facts.HostDisplay) : null, false);
        }
        var tlsa = facts.Tlsa;
        var baseDomain = tlsa?.BaseDomain.Ascii ?? facts.HostDisplay;
        switch (facts.TlsaState)
        {
            case TlsaState.Usable:
                return (DanePolicy(tlsa!, []), true);
            case TlsaState.OnlyUnusable:
                // RFC 8460 §4.3.2.1: the records exist but none can be used; TLS goes on unauthenticated.
                return (DanePolicy(tlsa!, [new TlsRptFailureDetails { ResultType = TlsRptResultType.TlsaInvalid, ReceivingMxHostname = facts.HostDisplay, FailureReasonCode = "all-unusable-records+ignored" }]), true);
            case TlsaState.LookupFailed:
                var failed = new TlsRptFailureDetails { ResultType = TlsRptResultType.TlsaInvalid };
                var lookupEde = tlsa!.Error!.ExtendedError;
                if (lookupEde is not null)
                {
                    failed = failed with
                    {
                        FailureReasonCode = $"extended-dns-error-{lookupEde.InfoCode}-{lookupEde.Name.Replace(' ', '-')}",
                        ResultType = lookupEde.IsAuthenticationFailure ? TlsRptResultType.DnssecInvalid : TlsRptResultType.TlsaInvalid,
                    };
                }
                return (new TlsRptHostReport(new TlsRptPolicy { Type = TlsRptPolicyType.Tlsa, Domain = baseDomain }, [failed], lookupEde?.IsAuthenticationFailure == true), true);
            default:
                return (NoPolicy(baseDomain), false);
        }
    }

    private static TlsRptHostReport DanePolicy(TlsaGathering tlsa, IReadOnlyList<TlsRptFailureDetails> details) =>
        new(new TlsRptPolicy { Type = TlsRptPolicyType.Tlsa, Domain = tlsa.BaseDomain.Ascii, Strings = DaneTlsaRecords.PolicyStrings(tlsa.AllRecords) }, details, false);

    private static TlsRptHostReport NoPolicy(string domain) =>
        new(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = domain }, [], false);

    /// <summary>
    /// The plaintext retry (RFC 7435 §6): no TLS, nothing to verify, DANE not looked at again. REQUIRETLS
    /// never gets here (its first connection needed DANE or enforced MTA-STS, which allow no fallback).
    /// </summary>
    private static TlsPolicyVerdict PlaintextRetry(TlsPolicyFacts facts, bool enforce, bool tlsRequiredNo)
    {
        var (report, _) = facts.DaneMayApply ? (null, false) : HostReport(facts);
        var names = facts.HostName is null ? [] : new[] { facts.HostName.Ascii };
        return new TlsPolicyVerdict
        {
            Mode = TlsMode.Skip,
            Plan = Plan(null, names, requirePkix: false, tlsRequiredNo, facts.ExtraTrustRoots),
            TlsName = names.Length > 0 ? names[0] : facts.HostDisplay,
            EnforcedMtaSts = enforce,
            HostReport = report,
        };
    }

    private static TlsVerificationPlan Plan(IReadOnlyList<Dns.TlsaRecord>? daneRecords, IReadOnlyList<string> names, bool requirePkix, bool ignoreErrors, X509Certificate2Collection? extraTrustRoots) => new()
    {
        DaneRecords = daneRecords,
        DaneAllowedNames = names,
        RequirePkix = requirePkix,
        IgnoreVerificationErrors = ignoreErrors,
        ExtraTrustRoots = extraTrustRoots,
    };

    private static TlsPolicyVerdict Nothing() => new()
    {
        Mode = TlsMode.Opportunistic,
        Plan = new TlsVerificationPlan(),
        TlsName = string.Empty,
    };
}
