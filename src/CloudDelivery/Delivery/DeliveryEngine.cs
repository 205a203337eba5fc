using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CloudDelivery.Dane;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Messages;
using CloudDelivery.MtaSts;
using CloudDelivery.Smtp;
using CloudDelivery.Telemetry;
using CloudDelivery.TlsRpt;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Delivery;

/// <summary>
/// Direct delivery to the MX hosts of a recipient domain, the algorithm of mox's queue/direct.go in C#.
/// One call delivers any number of messages to one recipient domain: destinations and the MTA-STS policy
/// are resolved once, connections are reused for several messages (and, for many messages, several run in
/// parallel to the host), and each message is sent with as many recipients per transaction as the server
/// allows.
/// </summary>
public sealed partial class DeliveryEngine : IDisposable
{
    private readonly DnsResolver resolver;
    private readonly DestinationResolver destinations;
    private readonly TlsaGatherer tlsa;
    private readonly MtaStsPolicyProvider mtaSts;
    private readonly DeliveryEngineOptions options;
    private readonly TimeProvider time;
    private readonly DeliveryMetrics metrics;
    private readonly ILogger logger;

    public DeliveryEngine(DnsResolver resolver, MtaStsPolicyProvider mtaSts, DeliveryEngineOptions options, TimeProvider? time = null, DeliveryMetrics? metrics = null, ILogger<DeliveryEngine>? logger = null)
    {
        this.resolver = resolver;
        destinations = new DestinationResolver(resolver);
        tlsa = new TlsaGatherer(resolver);
        this.mtaSts = mtaSts;
        this.options = options;
        this.time = time ?? TimeProvider.System;
        ownsMetrics = metrics is null;
        this.metrics = metrics ?? new DeliveryMetrics();
        this.logger = (ILogger?)logger ?? NullLogger.Instance;
        shaper = new Shaping.TrafficShaper(options.Shaping, this.time, this.metrics);
    }

    private readonly Shaping.TrafficShaper shaper;

    /// <summary>The resolver this engine uses for every lookup.</summary>
    public DnsResolver Resolver => resolver;

    /// <summary>The MTA-STS policy source.</summary>
    public MtaStsPolicyProvider MtaSts => mtaSts;

    public DeliveryEngineOptions Options => options;

    /// <summary>The engine's counters, for the parts that report on its meter (the resolver self-check).</summary>
    public DeliveryMetrics Metrics => metrics;

    /// <summary>
    /// Wires an engine from its bound settings (<see cref="DeliveryOptions"/>, checked at start-up) and the
    /// host's name for EHLO: the one resolver, the MTA-STS fetcher and policy cache (in memory unless a
    /// store is given), the delivery options and the operator's rules (shipped defaults when null).
    /// </summary>
    /// <exception cref="FormatException">The resolver or a trust file is unusable.</exception>
    public static DeliveryEngine Create(DeliveryOptions settings, string ehloHostname, IMtaStsPolicyStore? policyStore = null, TimeProvider? time = null, DeliveryMetrics? metrics = null, ILoggerFactory? loggerFactory = null, DeliveryRules? rules = null)
    {
        var roots = settings.LoadTrustRoots();
        return Create(settings.ToEngineOptions(ehloHostname, roots, rules), settings.ToDnsResolverOptions(), settings.ToMtaStsFetchOptions(roots), policyStore, time, metrics, loggerFactory);
    }

    /// <summary>
    /// Wires an engine from resolved parts (tests and tools with in-memory roots): <paramref name="mtaStsFetch"/>
    /// defaults to the engine's address policy and roots on port 443.
    /// </summary>
    public static DeliveryEngine Create(DeliveryEngineOptions options, DnsResolverOptions? dns = null, MtaStsFetchOptions? mtaStsFetch = null, IMtaStsPolicyStore? policyStore = null, TimeProvider? time = null, DeliveryMetrics? metrics = null, ILoggerFactory? loggerFactory = null)
    {
        time ??= TimeProvider.System;
        var resolver = new DnsResolver(dns ?? new DnsResolverOptions());
        var fetcher = new MtaStsPolicyFetcher(resolver, mtaStsFetch ?? new MtaStsFetchOptions { AddressPolicy = options.AddressPolicy, ExtraTrustRoots = options.ExtraTrustRoots }, time);
        var provider = new MtaStsPolicyProvider(resolver, fetcher, policyStore ?? new InMemoryMtaStsPolicyStore(), time);
        return new DeliveryEngine(resolver, provider, options, time, metrics, loggerFactory?.CreateLogger<DeliveryEngine>());
    }

    private readonly bool ownsMetrics;
    public void Dispose()
    {
        shaper.Dispose();
        if (ownsMetrics)
        {
            metrics.Dispose();
        }
    }

    /// <summary>
    /// Attempts delivery of <paramref name="request"/>'s messages now and returns a result per recipient,
    /// the TLSRPT results and the connections made. Never throws for delivery problems; they are results.
    /// </summary>
    public async Task<DeliveryOutcome> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        // High-level approach, as in mox's deliverDirect:
        // - Resolve the recipient domain to hosts (CNAMEs, MX, implicit MX, null MX).
        // - Get the domain's MTA-STS policy; with "enforce" only its MX hosts are used, with verified TLS.
        // - For each host in order: look up addresses and DANE TLSA records, dial, STARTTLS, deliver. A
        //   permanent failure ends the attempt; other failures move on to the next host. With many messages,
        //   further sessions to a host that accepted the first one share them (MaxSessionsPerHost).
        // - With nothing requiring TLS, a TLS failure is retried in plaintext on the same host.
        // - REQUIRETLS messages only go to DANE or enforced-MTA-STS hosts that support REQUIRETLS.
        var state = new AttemptState(request);
        var nextHop = request.Destination;
        if (state.RefuseUnencodable())
        {
            await state.PublishAsync(cancellationToken);
            return state.ToOutcome();
        }

        var destinationSet = await destinations.GatherDestinationsAsync(nextHop, cancellationToken);
        if (destinationSet.Error is { } destinationError)
        {
            // A DNSSEC failure is reported, though not as "dnssec-invalid", which RFC 8460 §4.3.2.1 keeps for DANE.
            if (destinationError.ExtendedError is { IsAuthenticationFailure: true } ede)
            {
                state.RecipientDomainResult = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, nextHop.Name!.Ascii, Detail(TlsRptResultType.ValidationFailure, ede.TlsRptReasonCode));
                state.RecipientDomainResult.Add(0, 1);
            }
            var kind = destinationError.Kind switch
            {
                DestinationFailure.NoSuchDomain => DeliveryFailureKind.NoSuchDomain,
                DestinationFailure.NullMx => DeliveryFailureKind.NullMx,
                _ => destinationError.Permanent ? DeliveryFailureKind.DestinationPermanent : DeliveryFailureKind.DestinationTemporary,
            };
            state.Fail(state.Pending, null, null, DeliveryFailure.Of(kind, destinationError.Message) with { Permanent = destinationError.Permanent });
            await state.PublishAsync(cancellationToken);
            return state.ToOutcome();
        }

        // MTA-STS is looked up at the recipient domain as given, never at a CNAME target: one spoofed CNAME
        // answer would otherwise choose the policy (RFC 8461 §4, mox does the same).
        MtaStsLookup? policyLookup = null;
        if (nextHop.Name is not null)
        {
            policyLookup = await mtaSts.GetAsync(nextHop.Name, cancellationToken);
            state.RecipientDomainResult = policyLookup.Result;
        }

        // Messages with different TLS requirements, or whose senders' domains have different operator TLS
        // floors, cannot share the decisions below; each group runs the host loop.
        foreach (var group in state.Pending.GroupBy(p => (p.Message.TlsRequirement, SenderFloor: options.TlsPolicies.ForSender(p.Message.Sender?.Domain.Name))).ToArray())
        {
            await DeliverGroupAsync(state, destinationSet, policyLookup, group.Key.TlsRequirement, group.ToList(), cancellationToken);
        }
        await state.PublishAsync(cancellationToken);
        return state.ToOutcome();
    }

    private async Task DeliverGroupAsync(AttemptState state, DestinationSet destinationSet, MtaStsLookup? policyLookup, TlsRequirement requirement, List<PendingRecipient> pending, CancellationToken cancellationToken)
    {
        var domainResult = state.RecipientDomainResult ?? new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = state.Request.Destination.ToString() });
        if (RecipientDomainRefusal(state, policyLookup, requirement, domainResult) is { } domainRefusal)
        {
            state.Fail(pending, null, null, domainRefusal);
            return;
        }

        var last = DeliveryFailure.Of(DeliveryFailureKind.NotAttempted, "no delivery attempted");
        string? lastHost = null;
        IPAddress? lastAddress = null;
        var missingRequireTls = 0;
        var permanentRefusals = 0;
        foreach (var host in destinationSet.Hosts)
        {
            var mtaStsFacts = MtaStsFacts.From(policyLookup, host.Name);
            if (MxHostRefusal(state, host, mtaStsFacts, requirement, domainResult) is { } hostRefusal)
            {
                (last, lastHost) = (hostRefusal, host.Display);
                continue;
            }
            var attempt = await DeliverHostShapedAsync(state, destinationSet, host, mtaStsFacts, pending, domainResult, cancellationToken);
            pending = attempt.StillPending;
            if (attempt.Error is { } error)
            {
                last = error;
                lastHost = host.Display;
                lastAddress = attempt.Address;
                if (error.LeavesRequireTlsUnmet)
                {
                    missingRequireTls++;
                }
                if (error.Permanent && error.HostRefused)
                {
                    // A refusal at greeting or EHLO (554, RFC 5321 §3.1) is about this host, perhaps about our
                    // address: the next MX host may well accept. Permanent only if every host refuses.
                    permanentRefusals++;
                    continue;
                }
                if (error.Permanent)
                {
                    break;
                }
                continue;
            }
            if (pending.Count == 0)
            {
                return;
            }
        }

        if (pending.Count == 0)
        {
            return;
        }
        if (destinationSet.Hosts.Count > 0 && missingRequireTls == destinationSet.Hosts.Count)
        {
            // No host can carry the REQUIRETLS requirement; the domain is unlikely to gain it during the
            // retry period, so the sender hears about it now (RFC 8689 §4.2.1).
            state.Fail(pending, lastHost, lastAddress, DeliveryFailure.Of(DeliveryFailureKind.RequireTlsUnsatisfiableDomain, "REQUIRETLS: no destination server verifies TLS and supports REQUIRETLS"));
            return;
        }
        // Refusals by some hosts and temporary trouble with others stay temporary.
        var permanent = last.Permanent && (!last.HostRefused || permanentRefusals == destinationSet.Hosts.Count);
        state.Fail(pending, lastHost, lastAddress, last with { Permanent = permanent });
    }

    /// <summary>
    /// The TLS-policy decision for the whole recipient domain, before any host: a failed MTA-STS lookup
    /// stops delivery (RFC 8461 §5.1) unless the sender said TLS-Required: No (RFC 8689 §5).
    /// </summary>
    private DeliveryFailure? RecipientDomainRefusal(AttemptState state, MtaStsLookup? policyLookup, TlsRequirement requirement, TlsRptResult domainResult)
    {
        var mtaStsFacts = MtaStsFacts.From(policyLookup, null);
        if (TlsPolicyDecision.ForRecipientDomain(mtaStsFacts, requirement) is not { } verdict)
        {
            return null;
        }
        if (verdict.OverriddenByTlsRequiredNo.Contains("mtastspolicy"))
        {
            logger.LogInformation("MTA-STS lookup failed for {Domain}, continuing because of TLS-Required: No: {Error}", state.Request.Destination, mtaStsFacts.LookupError);
            metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "mtastspolicy"));
        }
        TlsPolicyDecision.Apply(verdict, domainResult);
        return verdict.Failure;
    }

    /// <summary>
    /// The TLS-policy decision for one MX host before any lookup: a host outside the MTA-STS policy is
    /// reported, and skipped in enforce mode unless the sender said TLS-Required: No (RFC 8461 §4.1).
    /// </summary>
    private DeliveryFailure? MxHostRefusal(AttemptState state, DeliveryHost host, MtaStsFacts mtaStsFacts, TlsRequirement requirement, TlsRptResult domainResult)
    {
        if (TlsPolicyDecision.ForMxHost(mtaStsFacts, host.Display, state.Request.Destination.ToString(), requirement) is not { } verdict)
        {
            return null;
        }
        TlsPolicyDecision.Apply(verdict, domainResult);
        if (verdict.OverriddenByTlsRequiredNo.Contains("mtastsmx"))
        {
            metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "mtastsmx"));
        }
        if (verdict.Failure is not null)
        {
            logger.LogWarning("MX host {Host} does not match enforced MTA-STS policy, skipping", host.Display);
        }
        return verdict.Failure;
    }

    /// <summary>
    /// One host, then, after a TLS failure the decision lets go (RFC 7435 §6: not with DANE or enforced
    /// MTA-STS, unless TLS-Required: No), the plaintext retry on the same host.
    /// </summary>
    private async Task<HostAttempt> DeliverHostWithFallbackAsync(
        AttemptState state, DestinationSet destinationSet, DeliveryHost host, MtaStsFacts mtaStsFacts, List<PendingRecipient> pending, TlsRptResult domainResult, CancellationToken cancellationToken)
    {
        var attempt = await DeliverHostAsync(state, destinationSet, host, mtaStsFacts, pending, domainResult, plaintextRetry: false, cancellationToken);
        if (attempt.HostResult is not null)
        {
            state.HostResults.Add(attempt.HostResult);
        }
        if (attempt.Error is not { IsTlsFailure: true } || !attempt.PlaintextFallbackAllowed)
        {
            return attempt;
        }
        metrics.PlaintextFallbacks.Add(1);
        if (pending[0].Message.TlsRequirement == TlsRequirement.TlsRequiredNo)
        {
            metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "badtls"));
        }
        logger.LogInformation("TLS failed with {Host}, retrying without TLS", host.Display);
        var scratch = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host.Display });
        return await DeliverHostAsync(state, destinationSet, host, mtaStsFacts, pending, scratch, plaintextRetry: true, cancellationToken);
    }

    /// <summary>
    /// One host, top-down: gather its addresses, decide DANE, check REQUIRETLS, dial, open a session, then
    /// run that session (and any parallel ones) and merge their results.
    /// </summary>
    private async Task<HostAttempt> DeliverHostAsync(
        AttemptState state,
        DestinationSet destinationSet,
        DeliveryHost host,
        MtaStsFacts mtaStsFacts,
        List<PendingRecipient> pending,
        TlsRptResult domainResult,
        bool plaintextRetry,
        CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var requirement = pending[0].Message.TlsRequirement;
        var attempt = new HostAttempt { StillPending = pending };

        metrics.Destinations.Add(1);
        state.Request.DialledAddresses.TryGetValue(host.Display, out var previous);
        var addresses = await destinations.GatherAddressesAsync(host, previous, cancellationToken);
        var senderFloor = options.TlsPolicies.ForSender(pending[0].Message.Sender?.Domain.Name);
        var tls = await DecideHostTlsAsync(state, destinationSet, host, addresses, mtaStsFacts, plaintextRetry, requirement, senderFloor, domainResult, cancellationToken);
        var verdict = tls.Verdict;
        var mode = verdict.Mode;
        attempt.PlaintextFallbackAllowed = verdict.PlaintextFallbackAllowed;
        attempt.HostResult = tls.HostResult;

        if (tls.Error is null && RequireTlsRefusal(verdict) is { } requireTls)
        {
            return attempt.Failed(requireTls);
        }
        if (tls.Error is null && verdict.Failure is { Kind: DeliveryFailureKind.OperatorTlsPolicy } operatorRefusal)
        {
            return attempt.Failed(operatorRefusal);
        }
        if (tls.Error is { } error)
        {
            RecordDuration(started, mode, "error");
            if (error.Kind == DestinationFailure.NoAddresses && !destinationSet.HaveMx)
            {
                // The domain exists but has neither MX nor address records: nowhere to deliver, ever (RFC 5321 §5.1).
                return attempt.Failed(DeliveryFailure.Of(DeliveryFailureKind.NoMxOrAddress, $"domain {state.Request.Destination} has no MX, A or AAAA records"));
            }
            return attempt.Failed(DeliveryFailure.Of(DeliveryFailureKind.HostDnsFailed, error.Message));
        }

        var (socket, dialled, dialFailure) = await DialHostAsync(state, host, addresses, cancellationToken);
        attempt.Address = dialled;
        if (socket is null)
        {
            RecordDuration(started, mode, "error");
            return attempt.Failed(dialFailure!);
        }

        var target = new SessionTarget(
            host.Display,
            dialled!,
            verdict.TlsName,
            mode,
            verdict.Plan,
            new SmtpSessionOptions { EhloHostname = options.EhloHostname, CommandTimeout = options.CommandTimeout, SessionTimeout = options.SessionTimeout, Time = time },
            verdict.EnforcedMtaSts,
            plaintextRetry,
            addresses.DualStack);
        var hostTlsResult = tls.HostResult ?? new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host.Display });
        var (session, refused) = await OpenSessionAsync(state, target, socket, domainResult, hostTlsResult, tls.HostResult, cancellationToken);
        if (session is null)
        {
            RecordDuration(started, mode, "error");
            return attempt.Failed(TlsPolicyDecision.ExplainFailure(verdict, refused!));
        }
        await using (session)
        {
            // Taken while the session is fresh: after a lost connection the client no longer says it ran TLS.
            var seen = RecipientDomainTls.Of(session, VerifiedBy(PostureOf(session, target.EnforceMtaSts)), time.GetUtcNow());
            var (stillPending, sharedError, delivered, failed) = await RunSessionsAsync(state, target, session, pending, domainResult, hostTlsResult, cancellationToken);
            state.NoteDomainTls(seen, delivered > 0);
            attempt.StillPending = stillPending;
            RecordDuration(started, mode, delivered > 0 && failed == 0 && stillPending.Count == 0 ? "delivered" : delivered > 0 ? "partial" : "failed");
            // A connection that stopped at its messages-per-connection limit failed nothing: the rest take another.
            if (stillPending.Count > 0 && !(sharedError is null && state.Shaping.ConnectionCapReached))
            {
                attempt.Error = sharedError ?? DeliveryFailure.Of(DeliveryFailureKind.ConnectionLost, $"connection to {host.Display} lost") with { Tls = PostureOf(session, target.EnforceMtaSts) };
            }
            return attempt;
        }
    }

    /// <summary>Where and how every session of one host attempt connects: the address, TLS mode and verification.</summary>
    private sealed record SessionTarget(
        string Host,
        IPAddress Address,
        string TlsName,
        TlsMode Mode,
        TlsVerificationPlan Plan,
        SmtpSessionOptions SessionOptions,
        bool EnforceMtaSts,
        bool PlaintextRetry,
        bool DualStack);

    /// <summary>The TLS-policy verdict for one host attempt, its TLSRPT host result, and a lookup failure that ends it.</summary>
    private sealed class HostTlsDecision
    {
        public required TlsPolicyVerdict Verdict { get; init; }

        public TlsRptResult? HostResult { get; init; }

        /// <summary>The address or TLSA lookup failed in a way that ends this host attempt.</summary>
        public DestinationError? Error { get; init; }
    }

    /// <summary>
    /// Gathers the host's TLSA records when DANE may apply and asks the one TLS-policy decision
    /// (<see cref="TlsPolicyDecision.ForConnection"/>) for the mode, verification plan, names and TLSRPT result.
    /// </summary>
    private async Task<HostTlsDecision> DecideHostTlsAsync(
        AttemptState state, DestinationSet destinationSet, DeliveryHost host, HostAddresses addresses, MtaStsFacts mtaStsFacts, bool plaintextRetry, TlsRequirement requirement, Tls.OperatorTlsPolicy? senderFloor, TlsRptResult domainResult, CancellationToken cancellationToken)
    {
        var facts = TlsPolicyFacts.For(state.Request.Destination, destinationSet, host, addresses, mtaStsFacts, requirement) with
        {
            PlaintextRetry = plaintextRetry,
            ExtraTrustRoots = options.ExtraTrustRoots,
            Operator = options.TlsPolicies.For(state.Request.Destination.Name, host.Name, senderFloor),
        };
        if (facts.DaneMayApply)
        {
            metrics.DestinationsAuthentic.Add(1);
            if (!facts.PlaintextRetry)
            {
                // The plaintext retry does not look again: DANE did not apply on the first try, or TLS-Required: No overrides it.
                facts = facts with { Tlsa = await tlsa.GatherAsync(host.Name!, destinationSet.ExpandedNextHopAuthentic && addresses.ExpandedAuthentic, addresses.ExpandedHost, cancellationToken) };
            }
        }
        var verdict = TlsPolicyDecision.ForConnection(facts);
        if (facts.Tlsa is { DaneRequired: true })
        {
            metrics.DaneRequired.Add(1);
        }
        if (facts.Tlsa?.Error is not null)
        {
            metrics.TlsaErrors.Add(1);
        }
        if (facts.TlsaState == TlsaState.OnlyUnusable)
        {
            metrics.DaneUnverified.Add(1);
        }
        if (verdict.OverriddenByTlsRequiredNo.Contains("badtlsa"))
        {
            logger.LogInformation("TLSA lookup for {Host} failed, continuing without DANE because of TLS-Required: No", host.Display);
            metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "badtlsa"));
        }
        TlsRptResult? hostResult = null;
        if (verdict.HostReport is { } report)
        {
            hostResult = report.ToResult();
            if (report.CountsFailedSession)
            {
                domainResult.Add(0, 1);
                hostResult.Add(0, 1);
            }
        }
        return new HostTlsDecision
        {
            Verdict = verdict,
            HostResult = hostResult,
            Error = addresses.Error ?? (verdict.Failure?.Kind == DeliveryFailureKind.HostDnsFailed ? facts.Tlsa?.Error : null),
        };
    }

    /// <summary>RFC 8689 §4.2.1, as the TLS-policy decision applies it: REQUIRETLS needs DANE or an enforced MTA-STS policy.</summary>
    private DeliveryFailure? RequireTlsRefusal(TlsPolicyVerdict verdict)
    {
        if (verdict.Failure is not { Kind: DeliveryFailureKind.RequireTlsUnsatisfiableHost } refusal)
        {
            return null;
        }
        metrics.RequireTlsUnsupported.Add(1, new KeyValuePair<string, object?>("reason", "nopolicy"));
        return refusal;
    }

    /// <summary>
    /// Dials at most one address per family per attempt (RFC 5321 §5.1 leaves the strategy open) and notes
    /// the one that answered, so the next attempt prefers the other family.
    /// </summary>
    private async Task<(Socket? Socket, IPAddress? Address, DeliveryFailure? Failure)> DialHostAsync(AttemptState state, DeliveryHost host, HostAddresses addresses, CancellationToken cancellationToken)
    {
        var dialled = await MxDialer.DialAsync(Dialer.OnePerFamily(addresses.Addresses), options.SmtpPort, cancellationToken);
        if (dialled is { Socket: { } socket, Address: { } address })
        {
            if (!state.Request.DialledAddresses.TryGetValue(host.Display, out var list))
            {
                state.Request.DialledAddresses[host.Display] = list = [];
            }
            list.Add(address);
            return (socket, address, null);
        }
        var failure = dialled.LastFailure switch
        {
            { Outcome: DialOutcome.RefusedByPolicy } refused => DeliveryFailure.Of(DeliveryFailureKind.DialRefusedByPolicy, refused.Reason),
            { Outcome: DialOutcome.TimedOut } timedOut => DeliveryFailure.Of(DeliveryFailureKind.ConnectTimeout, $"connecting to {timedOut.Address}: {timedOut.Reason}"),
            { } failed => DeliveryFailure.Of(DeliveryFailureKind.DialFailed, $"connecting to {failed.Address}: {failed.Reason}"),
            null => DeliveryFailure.Of(DeliveryFailureKind.HostHasNoAddresses, $"no addresses for {host.Display}"),
        };
        return (null, null, failure);
    }

    /// <summary>
    /// Opens the first session to a host. Its TLS outcome is counted for TLSRPT whether it opens or not; a
    /// refusal is the host's answer, made temporary by the dual-stack rule where it applies.
    /// </summary>
    private static async Task<(SmtpSession? Session, DeliveryFailure? Refusal)> OpenSessionAsync(
        AttemptState state, SessionTarget target, Socket socket, TlsRptResult domainResult, TlsRptResult hostTlsResult, TlsRptResult? hostResult, CancellationToken cancellationToken)
    {
        try
        {
            var session = await SmtpSession.ConnectAsync(socket, target.TlsName, target.Mode, target.Plan, target.SessionOptions, domainResult, hostTlsResult, cancellationToken);
            state.AddConnection(Opened(target.Host, target.Address, session, target.PlaintextRetry));
            return (session, null);
        }
        catch (SmtpSessionException e)
        {
            state.AddConnection(new ConnectionReport(target.Host, target.Address, null, CertificateVerification.None, null, target.PlaintextRetry, e.Message));
            return (null, DeliveryFailure.FromSession(e).ForAttempt(state.Request.Attempt, target.DualStack));
        }
        finally
        {
            // The session's TLS outcome is known once it is open or refused: one with a failure detail but
            // no count (plaintext, a lost connection) is counted now, once, as a failure (RFC 8460 §4.2).
            domainResult.EndSession();
            hostResult?.EndSession();
        }
    }

    /// <summary>What is reported of a session that opened: its TLS version and certificate verification.</summary>
    private static ConnectionReport Opened(string host, IPAddress address, SmtpSession session, bool plaintextRetry) =>
        new(host, address, session.IsTls ? Tls.TlsVersionNames.Of(session.TlsProtocol) : null, session.Verification, session.CertificateSubject, plaintextRetry, null);

    /// <summary>How a session that reached MAIL FROM was protected: what was verified, not just whether TLS was up.</summary>
    private static TlsPosture PostureOf(SmtpSession session, bool enforceMtaSts) => session.Verification switch
    {
        CertificateVerification.DaneEe or CertificateVerification.DaneTa => TlsPosture.Dane,
        CertificateVerification.Pkix when enforceMtaSts => TlsPosture.MtaSts,
        _ => session.IsTls ? TlsPosture.Opportunistic : TlsPosture.Plaintext,
    };

    private static TlsVerifiedBy VerifiedBy(TlsPosture posture) => posture switch
    {
        TlsPosture.Dane => TlsVerifiedBy.Dane,
        TlsPosture.MtaSts => TlsVerifiedBy.MtaSts,
        _ => TlsVerifiedBy.None,
    };

    /// <summary>
    /// Dials MX hosts, whose addresses come from strangers' DNS: the configured address policy applies, and
    /// each attempt is counted (ok, timeout, refused, error). Extra sessions dial through it too.
    /// </summary>
    private Dialer MxDialer => mxDialer ??= new Dialer(options.AddressPolicy, options.ConnectTimeout, metrics.Connections);

    private Dialer? mxDialer;

    private void RecordDuration(long started, TlsMode mode, string result) =>
        metrics.DeliveryDuration.Record(
            Stopwatch.GetElapsedTime(started).TotalSeconds,
            new KeyValuePair<string, object?>("result", result),
            new KeyValuePair<string, object?>("tls_mode", mode.ToString().ToLowerInvariant()));

    private static TlsRptFailureDetails Detail(string resultType, string reasonCode) =>
        new() { ResultType = resultType, FailureReasonCode = reasonCode };

    private sealed class HostAttempt
    {
        /// <summary>The decision lets a TLS failure on this host be retried in plaintext (RFC 7435 §6).</summary>
        public bool PlaintextFallbackAllowed { get; set; }

        public TlsRptResult? HostResult { get; set; }

        public IPAddress? Address { get; set; }

        public DeliveryFailure? Error { get; set; }

        public required List<PendingRecipient> StillPending { get; set; }

        public HostAttempt Failed(DeliveryFailure failure)
        {
            Error = failure;
            return this;
        }
    }

}
