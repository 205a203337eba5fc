using System.Net;
using System.Net.Sockets;
using CloudDelivery.Addressing;
using CloudDelivery.Dane;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Messages;
using CloudDelivery.MtaSts;
using CloudDelivery.Smtp;
using CloudDelivery.Tls;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Delivery;

/// <summary>What a probe of one MX host found.</summary>
public sealed record HostProbe
{
    public required string Host { get; init; }

    public int Preference { get; init; }

    /// <summary>The host's address records were DNSSEC-authentic.</summary>
    public bool AddressesAuthentic { get; init; }

    public IReadOnlyList<string> Addresses { get; init; } = [];

    /// <summary>The host matches the domain's MTA-STS policy (null without a policy).</summary>
    public bool? MatchesMtaStsPolicy { get; init; }

    /// <summary>TLSA records found (presentation form); DANE applies when non-empty or when <see cref="DaneRequired"/>.</summary>
    public IReadOnlyList<string> TlsaRecords { get; init; } = [];

    public bool DaneRequired { get; init; }

    public bool TlsaAuthentic { get; init; }

    public string? TlsaError { get; init; }

    public string? ConnectedAddress { get; init; }

    public string? Greeting { get; init; }

    public IReadOnlyList<string> EhloKeywords { get; init; } = [];

    public bool StartTls { get; init; }

    public bool RequireTls { get; init; }

    public int RcptMax { get; init; }

    public long MaxSize { get; init; }

    public bool SmtpUtf8 { get; init; }

    public string? TlsVersion { get; init; }

    public string? CertificateSubject { get; init; }

    /// <summary>none, unverified, pkix, dane-ee or dane-ta.</summary>
    public CertificateVerification Verification { get; init; }

    public string? PkixError { get; init; }

    /// <summary>What delivery would make of this host, from the TLS-policy decision and what the connection showed.</summary>
    public TlsVerdict Verdict { get; init; }

    /// <summary>
    /// The operator's TLS policy entry that applies to this host and what it does here ("partner.example
    /// encrypt (line 2 of /etc/tls-policy): STARTTLS required, any certificate"); null when none applies.
    /// Sender-domain entries are not shown: the probe sends no mail.
    /// </summary>
    public string? OperatorPolicy { get; init; }

    /// <summary>Why, in words: which check passed or failed, or which rule refuses the host.</summary>
    public string? VerdictDetail { get; init; }

    public string? Error { get; init; }

    /// <summary>
    /// What delivery would record of the recipient domain from this host (<see cref="RecipientDomainTls"/>):
    /// STARTTLS offered, REQUIRETLS offered over TLS, and how TLS would be verified, in the words of
    /// GET /api/domains/{domain}, so an application can compare.
    /// </summary>
    public RecipientDomainTls? DomainTls { get; init; }
}

/// <summary>A probe's verdict per host, in the manner of posttls-finger's "Verified" and "Untrusted".</summary>
public enum TlsVerdict
{
    /// <summary>Nothing concluded: the host could not be reached.</summary>
    Unknown,

    /// <summary>The policy refuses the host before TLS: MX outside an enforced policy, failed TLSA lookup, STARTTLS missing where required.</summary>
    Refused,

    /// <summary>The verification delivery requires failed (DANE, or WebPKI for enforced MTA-STS): delivery refuses the host.</summary>
    Failed,

    /// <summary>The verification delivery requires passed: DANE or WebPKI under enforced MTA-STS.</summary>
    Verified,

    /// <summary>TLS with a valid WebPKI certificate that delivery does not require.</summary>
    Trusted,

    /// <summary>TLS whose certificate does not verify, or is not required to (opportunistic, or unusable TLSA records).</summary>
    Untrusted,

    /// <summary>No STARTTLS offered, and delivery goes on in plaintext (RFC 7435 §4).</summary>
    Plaintext,
}

/// <summary>What a probe of a recipient domain found.</summary>
public sealed class DomainProbe
{
    public required string Domain { get; init; }

    public bool HaveMx { get; init; }

    public bool MxAuthentic { get; init; }

    public string? ExpandedDomain { get; init; }

    public string? DestinationError { get; init; }

    /// <summary>The MX lookup could not conclude (SERVFAIL, timeout, DNSSEC bogus): whether there is an MX is unknown.</summary>
    public bool MxLookupFailed { get; init; }

    public string? MtaStsMode { get; init; }

    public IReadOnlyList<string> MtaStsPolicy { get; init; } = [];

    /// <summary>Why there is no MTA-STS policy, or what went wrong fetching it.</summary>
    public string? MtaStsNote { get; init; }

    public IReadOnlyList<HostProbe> Hosts { get; init; } = [];
}

/// <summary>
/// Looks at a recipient domain the way delivery would, without sending a message: MX hosts with their
/// DNSSEC status, the MTA-STS policy, TLSA records, and per host the EHLO capabilities and TLS outcome.
/// </summary>
public sealed class DestinationProbe(DeliveryEngine engine)
{
    public async Task<DomainProbe> ProbeAsync(Domain domain, CancellationToken cancellationToken)
    {
        var resolver = new DestinationResolver(engine.Resolver);
        var destinations = await resolver.GatherDestinationsAsync(NextHop.FromDomain(domain), cancellationToken);
        var policyLookup = await engine.MtaSts.GetAsync(domain, cancellationToken);
        var policy = policyLookup.Policy;
        string? note = policyLookup.TemporaryError;
        if (policy is null && note is null)
        {
            note = policyLookup.Result.FailureDetails.Count > 0
                ? string.Join("; ", policyLookup.Result.FailureDetails.Select(f => $"{f.ResultType} {f.FailureReasonCode} {f.AdditionalInformation}".Trim()))
                : "no _mta-sts TXT record";
        }

        var hosts = new List<HostProbe>();
        foreach (var host in destinations.Hosts)
        {
            hosts.Add(await ProbeHostAsync(resolver, domain, destinations, host, policyLookup, cancellationToken));
        }
        return new DomainProbe
        {
            Domain = domain.Ascii,
            HaveMx = destinations.HaveMx,
            MxAuthentic = destinations.OriginalNextHopAuthentic && destinations.ExpandedNextHopAuthentic,
            ExpandedDomain = destinations.ExpandedNextHop?.Ascii,
            DestinationError = destinations.Error?.Message,
            MxLookupFailed = destinations.Error?.Kind == DestinationFailure.LookupFailed,
            MtaStsMode = policy?.Mode.ToString().ToLowerInvariant(),
            MtaStsPolicy = policy?.Lines ?? [],
            MtaStsNote = note,
            Hosts = hosts,
        };
    }

    private async Task<HostProbe> ProbeHostAsync(DestinationResolver resolver, Domain domain, DestinationSet destinations, DeliveryHost host, MtaStsLookup policyLookup, CancellationToken cancellationToken)
    {
        var addresses = await resolver.GatherAddressesAsync(host, null, cancellationToken);
        var policy = policyLookup.Policy;
        var matches = policy is null || policy.Mode == MtaStsMode.None || host.Name is null ? (bool?)null : policy.Matches(host.Name);
        // The same facts and the same decision as delivery, for a message without a TLS requirement.
        var facts = TlsPolicyFacts.For(NextHop.FromDomain(domain), destinations, host, addresses, MtaStsFacts.From(policyLookup, host.Name), TlsRequirement.Default)
            with
        { ExtraTrustRoots = engine.Options.ExtraTrustRoots, Operator = engine.Options.TlsPolicies.For(domain, host.Name, null) };
        if (facts.DaneMayApply)
        {
            facts = facts with { Tlsa = await new TlsaGatherer(engine.Resolver).GatherAsync(host.Name!, destinations.ExpandedNextHopAuthentic && addresses.ExpandedAuthentic, addresses.ExpandedHost, cancellationToken) };
        }
        var decision = TlsPolicyDecision.Decide(facts);
        var tlsa = facts.Tlsa;
        var probe = new HostProbe
        {
            Host = host.Display,
            Preference = host.Preference,
            AddressesAuthentic = addresses.Authentic,
            Addresses = addresses.Addresses.Select(a => a.ToString()).ToArray(),
            MatchesMtaStsPolicy = matches,
            TlsaRecords = tlsa?.AllRecords.Select(r => r.ToString()).ToArray() ?? [],
            DaneRequired = tlsa?.DaneRequired ?? false,
            TlsaAuthentic = facts.DaneMayApply,
            TlsaError = tlsa?.Error?.Message,
            Error = addresses.Error?.Message,
            OperatorPolicy = decision.Operator is { } entry ? $"{entry.Policy} ({entry.Policy.Origin}): {decision.OperatorEffect}" : null,
        };
        if (addresses.Error is not null)
        {
            return probe;
        }
        if (decision.Failure is { } refusal)
        {
            probe = probe with { Verdict = TlsVerdict.Refused, VerdictDetail = $"{refusal.Reply.Text} (delivery does not connect)" };
        }

        // The probe dials as delivery does: the address policy, one address per family, the connect timeout.
        var dialer = new Dialer(engine.Options.AddressPolicy, engine.Options.ConnectTimeout);
        foreach (var address in Dialer.OnePerFamily(addresses.Addresses))
        {
            var dialled = await dialer.DialAsync([address], engine.Options.SmtpPort, cancellationToken);
            if (dialled.Socket is null)
            {
                probe = probe with { Error = DialError(address, dialled.LastFailure) };
                continue;
            }
            using var socket = dialled.Socket;
            try
            {
                await using var session = await ConnectObservingAsync(socket, decision, host.Display, cancellationToken);
                var (verdict, detail) = decision.Failure is null ? VerdictOf(decision, session) : (probe.Verdict, probe.VerdictDetail);
                return probe with
                {
                    ConnectedAddress = address.ToString(),
                    Greeting = session.RemoteGreetingName,
                    EhloKeywords = session.EhloKeywords,
                    StartTls = session.IsTls,
                    RequireTls = session.SupportsRequireTls,
                    RcptMax = session.RcptMax,
                    MaxSize = session.MaxSize,
                    SmtpUtf8 = session.SupportsSmtpUtf8,
                    TlsVersion = session.IsTls ? TlsVersionNames.Of(session.TlsProtocol) : null,
                    CertificateSubject = session.CertificateSubject,
                    Verification = DeliveryVerification(decision, session),
                    PkixError = session.PkixError,
                    Verdict = verdict,
                    VerdictDetail = detail,
                    DomainTls = RecipientDomainTls.Of(session, WouldVerifyBy(verdict, session), TimeProvider.System.GetUtcNow()),
                    Error = null,
                };
            }
            catch (SmtpSessionException e)
            {
                probe = probe with { Error = $"{address}: {e.Message}" };
            }
        }
        return probe;
    }

    /// <summary>How delivery would count the session's TLS: only a verified one counts, by DANE when a TLSA record matched, else by the enforced MTA-STS policy.</summary>
    private static TlsVerifiedBy WouldVerifyBy(TlsVerdict verdict, SmtpSession session) => verdict != TlsVerdict.Verified
        ? TlsVerifiedBy.None
        : session.Verification is CertificateVerification.DaneEe or CertificateVerification.DaneTa ? TlsVerifiedBy.Dane : TlsVerifiedBy.MtaSts;

    /// <summary>What the probe reports of a failed dial: the policy's refusal as is, anything else with its address.</summary>
    private static string DialError(IPAddress address, DialFailure? failure) =>
        failure is { Outcome: DialOutcome.RefusedByPolicy } ? failure.Reason : $"connecting to {address}: {failure?.Reason}";

    /// <summary>
    /// Opens a session with delivery's verification plan, but opportunistic and with verification errors
    /// only observed, never fatal: the probe reports what it saw, and judges it in <see cref="VerdictOf"/>.
    /// </summary>
    private Task<SmtpSession> ConnectObservingAsync(Socket socket, TlsPolicyVerdict decision, string host, CancellationToken cancellationToken)
    {
        var plan = new TlsVerificationPlan
        {
            DaneRecords = decision.Plan.DaneRecords,
            DaneAllowedNames = decision.Plan.DaneAllowedNames,
            RequirePkix = decision.Plan.RequirePkix,
            PkixAllowedNames = decision.Plan.PkixAllowedNames,
            IgnoreVerificationErrors = true,
            ExtraTrustRoots = decision.Plan.ExtraTrustRoots,
        };
        var scratch = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host });
        var options = new SmtpSessionOptions { EhloHostname = engine.Options.EhloHostname, CommandTimeout = engine.Options.CommandTimeout, SessionTimeout = engine.Options.SessionTimeout };
        return SmtpSession.ConnectAsync(socket, decision.TlsName, TlsMode.Opportunistic, plan, options, scratch, scratch, cancellationToken);
    }

    /// <summary>
    /// The verification as delivery counts it: with usable TLSA records only DANE counts (RFC 7672 §3.1), so
    /// a WebPKI-valid certificate that matches none of them is unverified, not "pkix".
    /// </summary>
    private static CertificateVerification DeliveryVerification(TlsPolicyVerdict decision, SmtpSession session) =>
        decision.Plan.DaneRecords is { Count: > 0 } && session.Verification == CertificateVerification.Pkix
            ? CertificateVerification.Unverified
            : session.Verification;

    /// <summary>
    /// What delivery would make of the session the probe saw: the checks of the decision's plan applied to
    /// the certificate the server presented, and its rule for a server without STARTTLS.
    /// </summary>
    private static (TlsVerdict Verdict, string Detail) VerdictOf(TlsPolicyVerdict decision, SmtpSession session)
    {
        if (!session.IsTls)
        {
            return decision.WithoutStartTls == WithoutStartTls.Fail
                ? (TlsVerdict.Refused, "STARTTLS not offered, but required (delivery refuses this host)")
                : (TlsVerdict.Plaintext, "STARTTLS not offered; delivery goes on without TLS");
        }
        var plan = decision.Plan;
        if (plan.DaneRecords is { Count: > 0 })
        {
            // RFC 7672 §3.1: with usable TLSA records, only a match counts; WebPKI cannot stand in for it.
            if (plan.RequirePkix && session.PkixError is not null)
            {
                return (TlsVerdict.Failed, $"WebPKI failed, which the enforced MTA-STS policy requires as well as DANE (delivery refuses this host): {session.PkixError}");
            }
            return session.Verification switch
            {
                CertificateVerification.DaneEe => (TlsVerdict.Verified, "DANE-EE: the certificate matches a TLSA record"),
                CertificateVerification.DaneTa => (TlsVerdict.Verified, "DANE-TA: the chain leads to a TLSA trust anchor"),
                _ => (TlsVerdict.Failed, "DANE: the certificate does not match the TLSA records (delivery refuses this host)"),
            };
        }
        if (plan.RequirePkix)
        {
            return session.PkixError is null
                ? (TlsVerdict.Verified, "WebPKI, as the enforced MTA-STS policy requires")
                : (TlsVerdict.Failed, $"WebPKI failed, which the enforced MTA-STS policy requires (delivery refuses this host): {session.PkixError}");
        }
        if (plan.DaneRecords is not null)
        {
            return (TlsVerdict.Untrusted, "TLSA records exist but none is usable: TLS is required, the certificate is not authenticated");
        }
        return session.PkixError is null
            ? (TlsVerdict.Trusted, "WebPKI valid (not required: opportunistic TLS)")
            : (TlsVerdict.Untrusted, $"certificate not verified (not required: opportunistic TLS): {session.PkixError}");
    }
}
