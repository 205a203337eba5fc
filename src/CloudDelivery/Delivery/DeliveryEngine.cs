using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CloudDelivery.Addressing;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
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
public sealed class DeliveryEngine : IDisposable
{
    private readonly DnsResolver resolver;
    private readonly DestinationResolver destinations;
    private readonly MtaStsPolicyProvider mtaSts;
    private readonly DeliveryEngineOptions options;
    private readonly TimeProvider time;
    private readonly DeliveryMetrics metrics;
    private readonly ILogger logger;

    public DeliveryEngine(DnsResolver resolver, MtaStsPolicyProvider mtaSts, DeliveryEngineOptions options, TimeProvider? time = null, DeliveryMetrics? metrics = null, ILogger<DeliveryEngine>? logger = null)
    {
        this.resolver = resolver;
        destinations = new DestinationResolver(resolver);
        this.mtaSts = mtaSts;
        this.options = options;
        this.time = time ?? TimeProvider.System;
        ownsMetrics = metrics is null;
        this.metrics = metrics ?? new DeliveryMetrics();
        this.logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The resolver this engine uses for every lookup.</summary>
    public DnsResolver Resolver => resolver;

    /// <summary>The MTA-STS policy source.</summary>
    public MtaStsPolicyProvider MtaSts => mtaSts;

    public DeliveryEngineOptions Options => options;

    /// <summary>
    /// Wires an engine from flat settings: the one resolver, the MTA-STS fetcher and policy cache (in memory
    /// unless a store is given), and the delivery options.
    /// </summary>
    public static DeliveryEngine Create(DeliverySettings settings, IMtaStsPolicyStore? policyStore = null, TimeProvider? time = null, DeliveryMetrics? metrics = null, ILoggerFactory? loggerFactory = null)
    {
        time ??= TimeProvider.System;
        var resolver = new DnsResolver(new DnsResolverOptions { Server = settings.Resolver, QueryTimeout = settings.DnsTimeout });
        var addressPolicy = settings.AllowPrivateAddresses ? AddressPolicy.AllowPrivate : AddressPolicy.PublicOnly;
        var fetcher = new MtaStsPolicyFetcher(resolver, new MtaStsFetchOptions
        {
            HttpsPort = settings.MtaStsHttpsPort,
            Timeout = settings.MtaStsFetchTimeout,
            AddressPolicy = addressPolicy,
            ExtraTrustRoots = settings.ExtraTrustRoots,
        }, time);
        var provider = new MtaStsPolicyProvider(resolver, fetcher, policyStore ?? new InMemoryMtaStsPolicyStore(), time);
        var options = new DeliveryEngineOptions
        {
            EhloHostname = settings.EhloHostname,
            SmtpPort = settings.SmtpPort,
            AddressPolicy = addressPolicy,
            ExtraTrustRoots = settings.ExtraTrustRoots,
            ConnectTimeout = settings.ConnectTimeout,
            CommandTimeout = settings.CommandTimeout,
            SessionTimeout = settings.SessionTimeout,
            MaxSessionsPerHost = settings.MaxSessionsPerHost,
        };
        return new DeliveryEngine(resolver, provider, options, time, metrics, loggerFactory?.CreateLogger<DeliveryEngine>());
    }

    private readonly bool ownsMetrics;
    public void Dispose()
    {
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

        // Messages with different TLS requirements cannot share the decisions below; each group runs the host loop.
        foreach (var group in state.Pending.GroupBy(p => p.Message.TlsRequirement).ToArray())
        {
            await DeliverGroupAsync(state, destinationSet, policyLookup, group.Key, group.ToList(), cancellationToken);
        }
        await state.PublishAsync(cancellationToken);
        return state.ToOutcome();
    }

    /// <summary>
    /// Delivers <paramref name="request"/>'s messages through a smarthost instead of the recipients' MX
    /// hosts: STARTTLS with a WebPKI-verified certificate is required, then the login, then the same
    /// transactions and per-recipient results as direct delivery. Relay failures are temporary unless the
    /// relay answers 5xx for a recipient or a message.
    /// </summary>
    public async Task<DeliveryOutcome> DeliverViaSmarthostAsync(DeliveryRequest request, SmarthostSettings smarthost, CancellationToken cancellationToken)
    {
        var state = new AttemptState(request);
        if (state.RefuseUnencodable())
        {
            await state.PublishAsync(cancellationToken);
            return state.ToOutcome();
        }
        IReadOnlyList<IPAddress> addresses;
        if (IPAddress.TryParse(smarthost.Host, out var literal))
        {
            addresses = [literal];
        }
        else
        {
            var lookup = await resolver.LookupAddressesAsync(smarthost.Host, cancellationToken);
            addresses = lookup.Records;
            if (!lookup.Found)
            {
                state.Fail(state.Pending, smarthost.Host, null, DeliveryFailure.Of(DeliveryFailureKind.SmarthostDnsFailed, $"smarthost {smarthost.Host}: {lookup.Error ?? "no addresses"}"));
                await state.PublishAsync(cancellationToken);
                return state.ToOutcome();
            }
        }

        // The relay is the operator's choice, so the address policy for strangers' DNS does not apply.
        Socket? socket = null;
        IPAddress? dialled = null;
        string? dialError = null;
        var dialFailure = DeliveryFailureKind.SmarthostDialFailed;
        foreach (var address in addresses)
        {
            var connecting = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.ConnectTimeout);
            try
            {
                await connecting.ConnectAsync(new IPEndPoint(address, smarthost.Port), timeout.Token);
                (socket, dialled) = (connecting, address);
                break;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                connecting.Dispose();
                dialError = $"connecting to smarthost {address}:{smarthost.Port}: {e.Message}";
                dialFailure = e is OperationCanceledException ? DeliveryFailureKind.SmarthostConnectTimeout : DeliveryFailureKind.SmarthostDialFailed;
            }
        }
        if (socket is null)
        {
            state.Fail(state.Pending, smarthost.Host, null, DeliveryFailure.Of(dialFailure, dialError ?? $"smarthost {smarthost.Host} has no addresses"));
            await state.PublishAsync(cancellationToken);
            return state.ToOutcome();
        }

        var scratch = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = smarthost.Host });
        try
        {
            var plan = new TlsVerificationPlan { RequirePkix = true, ExtraTrustRoots = options.ExtraTrustRoots };
            var sessionOptions = new SmtpSessionOptions { EhloHostname = options.EhloHostname, CommandTimeout = options.CommandTimeout, SessionTimeout = options.SessionTimeout, Time = time };
            await using var session = await SmtpSession.ConnectAsync(socket, smarthost.Host, TlsMode.RequiredStartTls, plan, sessionOptions, scratch, scratch, cancellationToken);
            state.AddConnection(Opened(smarthost.Host, dialled!, session, plaintextRetry: false)); // TLS is required: always a version
            if (smarthost.UserName is not null)
            {
                await session.AuthenticateAsync(smarthost.UserName, smarthost.Password ?? string.Empty, cancellationToken);
            }
            // The relay's certificate is verified, but nothing is known about the recipient domain's policy.
            var posture = session.IsTls ? TlsPosture.Opportunistic : TlsPosture.Plaintext;
            var work = new SessionWork(state.Pending);
            var (stillPending, sharedError, _, _) = await RunTransactionsAsync(state.OpenOutbox(), session, posture, work, smarthost.Host, dialled!, dualStack: false, state.Request.Attempt, cancellationToken);
            stillPending.AddRange(work.TakeRest());
            var error = sharedError ?? DeliveryFailure.Of(DeliveryFailureKind.SmarthostConnectionLost, $"connection to smarthost {smarthost.Host} lost") with { Tls = posture };
            state.Fail(stillPending, smarthost.Host, dialled, error);
        }
        catch (SmtpSessionException e)
        {
            // Refused TLS, a bad certificate or a failed login: the relay's configuration, not the mail, is at fault.
            state.AddConnection(new ConnectionReport(smarthost.Host, dialled!, null, CertificateVerification.None, null, false, e.Message));
            state.Fail(state.Pending.Where(p => !state.IsComplete(p)), smarthost.Host, dialled, DeliveryFailure.FromSession(e) with { Permanent = false });
        }
        await state.PublishAsync(cancellationToken);
        return state.ToOutcome();
    }

    private async Task DeliverGroupAsync(AttemptState state, DestinationSet destinationSet, MtaStsLookup? policyLookup, TlsRequirement requirement, List<PendingRecipient> pending, CancellationToken cancellationToken)
    {
        var tlsRequiredNo = requirement == TlsRequirement.TlsRequiredNo;
        var domainResult = state.RecipientDomainResult ?? new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = state.Request.Destination.ToString() });
        var policy = policyLookup?.Policy;
        if (policyLookup?.TemporaryError is { } policyError)
        {
            if (tlsRequiredNo)
            {
                logger.LogInformation("MTA-STS lookup failed for {Domain}, continuing because of TLS-Required: No: {Error}", state.Request.Destination, policyError);
                metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "mtastspolicy"));
            }
            else
            {
                domainResult.Add(0, 1);
                state.Fail(pending, null, null, DeliveryFailure.Of(DeliveryFailureKind.MtaStsUnavailable, $"MTA-STS policy lookup failed: {policyError}"));
                return;
            }
        }

        var last = DeliveryFailure.Of(DeliveryFailureKind.NotAttempted, "no delivery attempted");
        string? lastHost = null;
        IPAddress? lastAddress = null;
        var missingRequireTls = 0;
        var permanentRefusals = 0;
        foreach (var host in destinationSet.Hosts)
        {
            // RFC 8461 §4.1: with a policy in force, only MX hosts matching its patterns may be used.
            if (policy is not null && policy.Mode != MtaStsMode.None && host.Name is not null && !policy.Matches(host.Name))
            {
                // RFC 8460 has no result type for this, so validation-failure with a telling reason code.
                domainResult.Add(0, 0, Detail(TlsRptResultType.ValidationFailure, "mtasts-policy-mx-mismatch") with { ReceivingMxHostname = host.Display });
                if (policy.Mode == MtaStsMode.Enforce)
                {
                    if (tlsRequiredNo)
                    {
                        metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "mtastsmx"));
                    }
                    else
                    {
                        last = DeliveryFailure.Of(DeliveryFailureKind.MxNotInPolicy, $"MX host {host.Display} does not match the enforced MTA-STS policy of {state.Request.Destination}");
                        lastHost = host.Display;
                        domainResult.Add(0, 1);
                        logger.LogWarning("MX host {Host} does not match enforced MTA-STS policy, skipping", host.Display);
                        continue;
                    }
                }
            }

            var enforceMtaSts = policy?.Mode == MtaStsMode.Enforce;
            var mode = enforceMtaSts ? TlsMode.RequiredStartTls : TlsMode.Opportunistic;
            var attempt = await DeliverHostAsync(state, destinationSet, host, enforceMtaSts, mode, requirePkix: enforceMtaSts, pending, domainResult, plaintextRetry: false, cancellationToken);
            if (attempt.HostResult is not null)
            {
                state.HostResults.Add(attempt.HostResult);
            }

            // A TLS failure without any requirement for TLS is retried without TLS: an old server that only
            // speaks ancient TLS still gets mail (RFC 7435 §6). Not with DANE or enforced MTA-STS, unless the
            // sender said TLS-Required: No.
            if (attempt.Error is { IsTlsFailure: true } && ((!enforceMtaSts && mode == TlsMode.Opportunistic && !attempt.TlsDane) || tlsRequiredNo))
            {
                metrics.PlaintextFallbacks.Add(1);
                if (tlsRequiredNo)
                {
                    metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "badtls"));
                }
                logger.LogInformation("TLS failed with {Host}, retrying without TLS", host.Display);
                var scratch = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host.Display });
                attempt = await DeliverHostAsync(state, destinationSet, host, enforceMtaSts, TlsMode.Skip, requirePkix: false, pending, scratch, plaintextRetry: true, cancellationToken);
            }

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

    private async Task<HostAttempt> DeliverHostAsync(
        AttemptState state,
        DestinationSet destinationSet,
        DeliveryHost host,
        bool enforceMtaSts,
        TlsMode mode,
        bool requirePkix,
        List<PendingRecipient> pending,
        TlsRptResult domainResult,
        bool plaintextRetry,
        CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var requirement = pending[0].Message.TlsRequirement;
        var tlsRequiredNo = requirement == TlsRequirement.TlsRequiredNo;
        var tlsDane = false;
        IReadOnlyList<Dns.TlsaRecord>? daneRecords = null;
        IReadOnlyList<Domain> tlsNames = host.Name is null ? [] : [host.Name];
        TlsRptResult? hostResult = null;
        var attempt = new HostAttempt { StillPending = pending };

        metrics.Destinations.Add(1);
        var dialledKey = host.Display;
        state.Request.DialledAddresses.TryGetValue(dialledKey, out var previous);
        var addresses = await destinations.GatherAddressesAsync(host, previous, cancellationToken);
        DestinationError? error = addresses.Error;

        // DANE only applies when every DNS answer that led to this host was DNSSEC-authentic (RFC 7672 §2.2).
        var destinationAuthentic = error is null && addresses.Authentic && destinationSet.OriginalNextHopAuthentic
            && (!destinationSet.HaveMx || destinationSet.ExpandedNextHopAuthentic) && host.Name is not null;
        void CountFailure()
        {
            domainResult.Add(0, 1);
            hostResult!.Add(0, 1);
        }

        if (!destinationAuthentic)
        {
            if (error?.ExtendedError is { IsAuthenticationFailure: true } ede)
            {
                hostResult = TlsRptResult.For(TlsRptPolicyType.Tlsa, host.Display, Detail(TlsRptResultType.ValidationFailure, ede.TlsRptReasonCode));
                CountFailure();
            }
            else if (error is null)
            {
                hostResult = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, host.Display);
            }
        }
        else if (mode == TlsMode.Skip)
        {
            // The plaintext retry: DANE was looked at on the first try and did not apply, or TLS-Required: No overrides it.
            metrics.DestinationsAuthentic.Add(1);
        }
        else
        {
            metrics.DestinationsAuthentic.Add(1);
            var tlsa = await destinations.GatherTlsaAsync(host.Name!, destinationSet.ExpandedNextHopAuthentic && addresses.ExpandedAuthentic, addresses.ExpandedHost, cancellationToken);
            tlsDane = tlsa.DaneRequired;
            if (tlsDane)
            {
                metrics.DaneRequired.Add(1);
            }
            if (tlsa.Error is not null)
            {
                metrics.TlsaErrors.Add(1);
            }
            if (tlsa.Error is null && tlsDane)
            {
                mode = TlsMode.RequiredStartTls;
                daneRecords = tlsa.Records;
                hostResult = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.Tlsa, Domain = tlsa.BaseDomain.Ascii, Strings = Dane.DaneTlsaRecords.PolicyStrings(tlsa.AllRecords) });
                if (daneRecords.Count == 0)
                {
                    // TLSA records exist but none is usable: STARTTLS is still required, without verification (RFC 7672 §2.2).
                    metrics.DaneUnverified.Add(1);
                    hostResult.Add(0, 0, new TlsRptFailureDetails { ResultType = TlsRptResultType.TlsaInvalid, ReceivingMxHostname = host.Display, FailureReasonCode = "all-unusable-records+ignored" });
                }
                tlsNames = Dane.DaneNames.Allowed(
                    destinationSet.HaveMx,
                    destinationSet.ExpandedNextHopAuthentic,
                    addresses.ExpandedAuthentic,
                    state.Request.Destination.Name!,
                    destinationSet.ExpandedNextHop ?? state.Request.Destination.Name!,
                    host.Name!,
                    tlsa.BaseDomain);
            }
            else if (!tlsDane)
            {
                hostResult = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, tlsa.BaseDomain.Ascii);
            }
            else
            {
                var detail = new TlsRptFailureDetails { ResultType = TlsRptResultType.TlsaInvalid };
                if (tlsa.Error!.ExtendedError is { } tlsaEde)
                {
                    detail = detail with { FailureReasonCode = $"extended-dns-error-{tlsaEde.InfoCode}-{tlsaEde.Name.Replace(' ', '-')}" };
                    if (tlsaEde.IsAuthenticationFailure)
                    {
                        detail = detail with { ResultType = TlsRptResultType.DnssecInvalid };
                    }
                }
                hostResult = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.Tlsa, Domain = tlsa.BaseDomain.Ascii });
                hostResult.Add(0, 0, detail);
                if (tlsa.Error.ExtendedError is { IsAuthenticationFailure: true })
                {
                    CountFailure();
                }
                error = tlsa.Error;
                if (tlsRequiredNo)
                {
                    logger.LogInformation("TLSA lookup for {Host} failed, continuing without DANE because of TLS-Required: No", host.Display);
                    metrics.TlsRequiredNoIgnored.Add(1, new KeyValuePair<string, object?>("reason", "badtlsa"));
                    error = null;
                    tlsDane = false;
                }
            }
        }
        attempt.TlsDane = tlsDane;
        attempt.HostResult = hostResult;

        if (error is null && requirement == TlsRequirement.RequireTls && !(tlsDane && daneRecords is { Count: > 0 }) && !enforceMtaSts)
        {
            // RFC 8689 §4.2.1: REQUIRETLS needs a verified TLS connection: DANE or an enforced MTA-STS policy.
            metrics.RequireTlsUnsupported.Add(1, new KeyValuePair<string, object?>("reason", "nopolicy"));
            return attempt.Failed(DeliveryFailure.Of(DeliveryFailureKind.RequireTlsUnsatisfiableHost, $"REQUIRETLS: {host.Display} has neither DANE nor an enforced MTA-STS policy"));
        }
        if (error is not null)
        {
            RecordDuration(started, mode, "error");
            if (error.Kind == DestinationFailure.NoAddresses && !destinationSet.HaveMx)
            {
                // The domain exists but has neither MX nor address records: nowhere to deliver, ever (RFC 5321 §5.1).
                return attempt.Failed(DeliveryFailure.Of(DeliveryFailureKind.NoMxOrAddress, $"domain {state.Request.Destination} has no MX, A or AAAA records"));
            }
            return attempt.Failed(DeliveryFailure.Of(DeliveryFailureKind.HostDnsFailed, error.Message));
        }

        // Dial: at most one address per family per attempt (RFC 5321 §5.1 leaves the strategy open).
        Socket? socket = null;
        IPAddress? dialled = null;
        DeliveryFailure? dialFailure = null;
        foreach (var address in OnePerFamily(addresses.Addresses))
        {
            if (options.AddressPolicy.Refusal(address) is { } refusal)
            {
                dialFailure = DeliveryFailure.Of(DeliveryFailureKind.DialRefusedByPolicy, refusal);
                continue;
            }
            (socket, var failure, var timedOut) = await DialAsync(address, cancellationToken);
            if (socket is not null)
            {
                dialled = address;
                if (!state.Request.DialledAddresses.TryGetValue(dialledKey, out var list))
                {
                    state.Request.DialledAddresses[dialledKey] = list = [];
                }
                list.Add(address);
                break;
            }
            dialFailure = DeliveryFailure.Of(timedOut ? DeliveryFailureKind.ConnectTimeout : DeliveryFailureKind.DialFailed, $"connecting to {address}: {failure}");
        }
        attempt.Address = dialled;
        if (socket is null)
        {
            RecordDuration(started, mode, "error");
            return attempt.Failed(dialFailure ?? DeliveryFailure.Of(DeliveryFailureKind.HostHasNoAddresses, $"no addresses for {host.Display}"));
        }

        var plan = new TlsVerificationPlan
        {
            DaneRecords = tlsDane ? daneRecords : null,
            DaneAllowedNames = tlsNames.Select(n => n.Ascii).ToArray(),
            RequirePkix = requirePkix,
            IgnoreVerificationErrors = tlsRequiredNo,
            ExtraTrustRoots = options.ExtraTrustRoots,
        };
        var sessionOptions = new SmtpSessionOptions { EhloHostname = options.EhloHostname, CommandTimeout = options.CommandTimeout, SessionTimeout = options.SessionTimeout, Time = time };
        var tlsName = tlsNames.Count > 0 ? tlsNames[0].Ascii : host.Display;
        SmtpSession session;
        try
        {
            session = await SmtpSession.ConnectAsync(socket, tlsName, mode, plan, sessionOptions, domainResult, hostResult ?? new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host.Display }), cancellationToken);
        }
        catch (SmtpSessionException e)
        {
            state.AddConnection(new ConnectionReport(host.Display, dialled!, null, CertificateVerification.None, null, plaintextRetry, e.Message));
            RecordDuration(started, mode, "error");
            return attempt.Failed(DeliveryFailure.FromSession(e).ForAttempt(state.Request.Attempt, addresses.DualStack));
        }
        finally
        {
            // The session's TLS outcome is known once it is open or refused: one with a failure detail but
            // no count (plaintext, a lost connection) is counted now, once, as a failure (RFC 8460 §4.2).
            domainResult.EndSession();
            hostResult?.EndSession();
        }

        await using (session)
        {
            state.AddConnection(Opened(host.Display, dialled!, session, plaintextRetry));
            var posture = PostureOf(session, enforceMtaSts);
            var work = new SessionWork(pending);
            // The host has accepted one session: more may share the work when there is enough of it. They
            // take messages from the same list. A further session that cannot open is ignored (the host was
            // judged by opening this one); once open, each message's transactions decide its own result.
            var hostTlsResult = hostResult ?? new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host.Display });
            // Extra sessions still dialling or greeting when nothing is left to take are called off: a host
            // that tarpits further connections must not hold a finished delivery for a whole timeout.
            using var stopOpening = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var extraSessions = Enumerable.Range(0, ExtraSessionsFor(work.Count))
                .Select(_ => RunExtraSessionAsync(state, work, host.Display, dialled!, tlsName, mode, plan, sessionOptions, enforceMtaSts, plaintextRetry, domainResult.Policy, hostTlsResult.Policy, addresses.DualStack, stopOpening.Token, cancellationToken))
                .ToArray();
            SessionResult first;
            try
            {
                first = await RunTransactionsAsync(state.OpenOutbox(), session, posture, work, host.Display, dialled!, addresses.DualStack, state.Request.Attempt, cancellationToken);
            }
            catch
            {
                // Results could not be recorded (or the run is being stopped): no session starts another
                // message, and none is left running behind the caller's back, whose lease ends with it.
                work.Abandon();
                await stopOpening.CancelAsync();
                try
                {
                    await Task.WhenAll(extraSessions);
                }
                catch (Exception)
                {
                    // The first session's failure is the one reported.
                }
                throw;
            }
            if (work.Count == 0)
            {
                await stopOpening.CancelAsync();
            }
            var (stillPending, sharedError, delivered, failed) = first;
            foreach (var extra in await Task.WhenAll(extraSessions))
            {
                // Each extra session counted its TLS outcomes apart (RFC 8460 counts sessions); added now, in one thread.
                domainResult.Merge(extra.DomainResult);
                hostTlsResult.Merge(extra.HostResult);
                stillPending.AddRange(extra.Sessions.StillPending);
                sharedError ??= extra.Sessions.SharedError;
                delivered += extra.Sessions.Delivered;
                failed += extra.Sessions.Failed;
            }
            // Messages no session could take (every one ended early) stay for the next host.
            stillPending.AddRange(work.TakeRest());
            attempt.StillPending = stillPending;
            RecordDuration(started, mode, delivered > 0 && failed == 0 && stillPending.Count == 0 ? "delivered" : delivered > 0 ? "partial" : "failed");
            if (stillPending.Count > 0)
            {
                attempt.Error = sharedError ?? DeliveryFailure.Of(DeliveryFailureKind.ConnectionLost, $"connection to {host.Display} lost") with { Tls = posture };
            }
            return attempt;
        }
    }

    /// <summary>
    /// Messages each further session should have before it is worth its connection and handshakes: a
    /// delivery of up to this many messages uses one session; each further batch of this many adds one, up to
    /// <see cref="DeliveryEngineOptions.MaxSessionsPerHost"/>.
    /// </summary>
    public const int MessagesPerExtraSession = 4;

    private int ExtraSessionsFor(int messages) => Math.Clamp((messages - 1) / MessagesPerExtraSession, 0, Math.Max(0, options.MaxSessionsPerHost - 1));

    /// <summary>What is reported of a session that opened: its TLS version and certificate verification.</summary>
    private static ConnectionReport Opened(string host, IPAddress address, SmtpSession session, bool plaintextRetry) =>
        new(host, address, session.IsTls ? Tls.TlsVersionNames.Of(session.TlsProtocol) : null, session.Verification, session.CertificateSubject, plaintextRetry, null);

    private sealed record ExtraSessionResult(SessionResult Sessions, TlsRptResult DomainResult, TlsRptResult HostResult);

    /// <summary>
    /// One more session to a host that already accepted one, with the same address, TLS mode and
    /// verification. It takes messages from <paramref name="work"/> until none are left. A refusal (a
    /// server limiting connections answers 421) or a failed handshake ends it quietly: the other sessions
    /// go on with the rest, and the host is not judged by it.
    /// </summary>
    private async Task<ExtraSessionResult> RunExtraSessionAsync(
        AttemptState state,
        SessionWork work,
        string host,
        IPAddress address,
        string tlsName,
        TlsMode mode,
        TlsVerificationPlan plan,
        SmtpSessionOptions sessionOptions,
        bool enforceMtaSts,
        bool plaintextRetry,
        TlsRptPolicy domainPolicy,
        TlsRptPolicy hostPolicy,
        bool dualStack,
        CancellationToken stopOpening,
        CancellationToken cancellationToken)
    {
        var domainResult = new TlsRptResult(domainPolicy);
        var hostResult = new TlsRptResult(hostPolicy);
        var nothing = new SessionResult([], null, 0, 0);
        var calledOff = new ExtraSessionResult(nothing, new TlsRptResult(domainPolicy), new TlsRptResult(hostPolicy));
        Socket? socket;
        string? failure;
        try
        {
            (socket, failure, _) = await DialAsync(address, stopOpening);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return calledOff;
        }
        if (socket is null)
        {
            logger.LogDebug("Extra session to {Host} not opened: {Error}", host, failure);
            return new ExtraSessionResult(nothing, domainResult, hostResult);
        }
        SmtpSession session;
        try
        {
            session = await SmtpSession.ConnectAsync(socket, tlsName, mode, plan, sessionOptions, domainResult, hostResult, stopOpening);
        }
        catch (Exception e) when (stopOpening.IsCancellationRequested && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or SmtpSessionException)
        {
            // Called off while greeting or handshaking: not a session the host had a say in; nothing to count.
            socket.Dispose();
            return calledOff;
        }
        catch (SmtpSessionException e)
        {
            state.AddConnection(new ConnectionReport(host, address, null, CertificateVerification.None, null, plaintextRetry, e.Message));
            logger.LogDebug("Extra session to {Host} refused: {Error}", host, e.Message);
            return new ExtraSessionResult(nothing, domainResult, hostResult);
        }
        await using (session)
        {
            state.AddConnection(Opened(host, address, session, plaintextRetry));
            try
            {
                var result = await RunTransactionsAsync(state.OpenOutbox(), session, PostureOf(session, enforceMtaSts), work, host, address, dualStack, state.Request.Attempt, cancellationToken);
                return new ExtraSessionResult(result, domainResult, hostResult);
            }
            catch
            {
                work.Abandon(); // the other sessions finish the transaction they are in, and stop
                throw;
            }
        }
    }

    /// <summary>The pending messages of one host attempt, taken one message at a time by its sessions.</summary>
    private sealed class SessionWork(IEnumerable<PendingRecipient> pending)
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<List<PendingRecipient>> messages = new(pending.GroupBy(p => p.Message).Select(g => g.ToList()));

        private volatile bool abandoned;

        public int Count => messages.Count;

        public bool TryTake(out List<PendingRecipient> message)
        {
            message = [];
            return !abandoned && messages.TryDequeue(out message!);
        }

        /// <summary>A session failed in a way that ends the whole attempt: no session takes another message.</summary>
        public void Abandon() => abandoned = true;

        /// <summary>Whatever no session took.</summary>
        public List<PendingRecipient> TakeRest()
        {
            var rest = new List<PendingRecipient>();
            while (messages.TryDequeue(out var message))
            {
                rest.AddRange(message);
            }
            return rest;
        }
    }

    private sealed record SessionResult(List<PendingRecipient> StillPending, DeliveryFailure? SharedError, int Delivered, int Failed);

    /// <summary>
    /// Sends messages taken from <paramref name="work"/> over an open session until none are left or the
    /// session ends: at most RCPTMAX recipients per transaction, a later recipient's 452/552 moved to the
    /// next transaction, results published (and recorded by the caller) right after each reply, before the
    /// next command. Returns what could not be concluded on this connection and why.
    /// </summary>
    private static async Task<SessionResult> RunTransactionsAsync(
        AttemptState.Outbox outbox, SmtpSession session, TlsPosture tls, SessionWork work, string host, IPAddress dialled, bool dualStack, int attemptNumber, CancellationToken cancellationToken)
    {
        var stillPending = new List<PendingRecipient>();
        var delivered = 0;
        var failed = 0;
        DeliveryFailure? sharedError = null;
        // A session that is no longer usable takes nothing more: other sessions, or the next host, get the rest.
        while (session.IsUsable && work.TryTake(out var todo))
        {
            var message = todo[0].Message;
            var firstTransaction = true;
            while (todo.Count > 0)
            {
                // RFC 9422 §4.2: no more recipients per transaction than the server's RCPTMAX.
                var count = session.RcptMax > 0 ? Math.Min(session.RcptMax, todo.Count) : todo.Count;
                var batch = todo.Take(count).ToList();
                var rest = todo.Skip(count).ToList();
                TransactionResult result;
                try
                {
                    result = await session.SendAsync(message, batch.Select(p => p.Recipient).ToArray(), cancellationToken);
                }
                catch (SmtpSessionException e)
                {
                    var failure = DeliveryFailure.FromSession(e).ForAttempt(attemptNumber, dualStack) with { Tls = tls };
                    if (firstTransaction && rest.Count == 0 && !failure.Permanent)
                    {
                        // The failure concerns the whole message: another host may do better.
                        stillPending.AddRange(batch);
                        sharedError = failure;
                    }
                    else
                    {
                        // A permanent refusal is this message's own result, decided here: carried along as the
                        // host's error it would also end messages that merely lost their connection, in this
                        // session or a parallel one.
                        outbox.Fail(batch, host, dialled, failure);
                        failed += batch.Count;
                    }
                    if (!session.IsUsable)
                    {
                        stillPending.AddRange(rest);
                        rest.Clear();
                    }
                    await outbox.PublishAsync(cancellationToken);
                    todo = rest;
                    firstTransaction = false;
                    continue;
                }
                var next = new List<PendingRecipient>();
                // As mox: only a refusal of the whole transaction counts as the host refusing us, and
                // may be made temporary for a dual-stack host (see Inspect).
                var allRefused = result.RecipientReplies.All(r => !r.IsPositive);
                for (var i = 0; i < batch.Count; i++)
                {
                    var reply = result.RecipientReplies[i];
                    if (i > 0 && reply.Code is 452 or 552 && !reply.IsPositive)
                    {
                        // "Too many recipients" for a later recipient: it goes into the next transaction
                        // (RFC 5321 §4.5.3.1.10, RFC 9422 §4.2).
                        next.Add(batch[i]);
                    }
                    else if (reply.IsPositive)
                    {
                        outbox.Complete(batch[i], RecipientStatus.Delivered, host, dialled, reply, tls);
                        delivered++;
                    }
                    else
                    {
                        var permanent = reply.IsPermanent && !(allRefused && DeliveryFailure.IsFirstDualStackPolicyRejection(reply, reply.IsPermanent, attemptNumber, dualStack));
                        outbox.Complete(batch[i], permanent ? RecipientStatus.Permanent : RecipientStatus.Temporary, host, dialled, reply, tls);
                        failed++;
                    }
                }
                await outbox.PublishAsync(cancellationToken);
                todo = [.. next, .. rest];
                firstTransaction = false;
            }
        }
        return new SessionResult(stillPending, sharedError, delivered, failed);
    }

    /// <summary>How a session that reached MAIL FROM was protected: what was verified, not just whether TLS was up.</summary>
    private static TlsPosture PostureOf(SmtpSession session, bool enforceMtaSts) => session.Verification switch
    {
        CertificateVerification.DaneEe or CertificateVerification.DaneTa => TlsPosture.Dane,
        CertificateVerification.Pkix when enforceMtaSts => TlsPosture.MtaSts,
        _ => session.IsTls ? TlsPosture.Opportunistic : TlsPosture.Plaintext,
    };

    /// <summary>The first address of each family, in the preferred order.</summary>
    private static IEnumerable<IPAddress> OnePerFamily(IReadOnlyList<IPAddress> addresses) =>
        addresses.DistinctBy(a => a.AddressFamily);

    private async Task<(Socket? Socket, string? Error, bool TimedOut)> DialAsync(IPAddress address, CancellationToken cancellationToken)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, options.SmtpPort), timeout.Token);
            metrics.Connections.Add(1, new KeyValuePair<string, object?>("result", "ok"));
            return (socket, null, false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            metrics.Connections.Add(1, new KeyValuePair<string, object?>("result", "timeout"));
            return (null, "connect timed out", true);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            metrics.Connections.Add(1, new KeyValuePair<string, object?>("result", e.SocketErrorCode == SocketError.ConnectionRefused ? "refused" : "error"));
            return (null, e.Message, false);
        }
    }

    private void RecordDuration(long started, TlsMode mode, string result) =>
        metrics.DeliveryDuration.Record(
            Stopwatch.GetElapsedTime(started).TotalSeconds,
            new KeyValuePair<string, object?>("result", result),
            new KeyValuePair<string, object?>("tls_mode", mode.ToString().ToLowerInvariant()));

    private static TlsRptFailureDetails Detail(string resultType, string reasonCode) =>
        new() { ResultType = resultType, FailureReasonCode = reasonCode };

    private sealed class HostAttempt
    {
        public bool TlsDane { get; set; }

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

    private sealed record PendingRecipient(OutboundMessage Message, EmailAddress Recipient);

    private sealed class AttemptState(DeliveryRequest request)
    {
        // Parallel sessions to one host complete recipients concurrently: the result map and the
        // connection list are shared, each session's outbox is its own.
        private readonly Lock gate = new();
        private readonly Dictionary<PendingRecipient, RecipientResult> results = [];
        private Outbox? main;

        public DeliveryRequest Request { get; } = request;

        private readonly List<PendingRecipient> everyone = request.Messages.SelectMany(m => m.Recipients.Distinct().Select(r => new PendingRecipient(m, r))).ToList();

        /// <summary>The recipients still to deliver: all but those <see cref="RefuseUnencodable"/> failed.</summary>
        public List<PendingRecipient> Pending { get; } = [];

        /// <summary>
        /// Fails, permanently and alone, each recipient whose address (or whose message's sender) MAIL FROM /
        /// RCPT TO cannot carry, so it never reaches a session where it would fail the transaction, the
        /// session or the run around it. Returns true when no recipient is left to deliver.
        /// </summary>
        public bool RefuseUnencodable()
        {
            foreach (var recipient in everyone)
            {
                if (recipient.Message.Sender is { } sender && !sender.IsEncodable(out var senderReason))
                {
                    Main.Fail([recipient], null, null, DeliveryFailure.Of(DeliveryFailureKind.UnencodableSender, $"sender address {sender} cannot be sent: {senderReason}"));
                }
                else if (!recipient.Recipient.IsEncodable(out var reason))
                {
                    Main.Fail([recipient], null, null, DeliveryFailure.Of(DeliveryFailureKind.UnencodableRecipient, $"recipient address {recipient.Recipient} cannot be sent: {reason}"));
                }
                else
                {
                    Pending.Add(recipient);
                }
            }
            return Pending.Count == 0;
        }

        public TlsRptResult? RecipientDomainResult { get; set; }

        public List<TlsRptResult> HostResults { get; } = [];

        private List<ConnectionReport> Connections { get; } = [];

        /// <summary>The outbox of the attempt's sequential parts (DNS and policy failures, what no session concluded).</summary>
        private Outbox Main => main ??= new Outbox(this);

        /// <summary>An outbox for one more session: its results are published by it, and only by it.</summary>
        public Outbox OpenOutbox() => new(this);

        public void AddConnection(ConnectionReport report)
        {
            lock (gate)
            {
                Connections.Add(report);
            }
        }

        public void Fail(IEnumerable<PendingRecipient> recipients, string? host, IPAddress? address, DeliveryFailure failure) =>
            Main.Fail(recipients, host, address, failure);

        public Task PublishAsync(CancellationToken cancellationToken) => Main.PublishAsync(cancellationToken);

        public bool IsComplete(PendingRecipient recipient)
        {
            lock (gate)
            {
                return results.ContainsKey(recipient);
            }
        }

        private void Record(PendingRecipient recipient, RecipientResult result)
        {
            lock (gate)
            {
                results[recipient] = result;
            }
        }

        /// <summary>
        /// Results one session has decided and not yet handed to the request's callback. A session publishes
        /// only its own, and waits for that, before its next transaction: what the callback records durably
        /// is then always what that session's server has already answered.
        /// </summary>
        public sealed class Outbox(AttemptState state)
        {
            private readonly List<RecipientResult> unpublished = [];

            public void Complete(PendingRecipient recipient, RecipientStatus status, string? host, IPAddress? address, SmtpReply reply, TlsPosture tls = TlsPosture.None, LocalFailure local = LocalFailure.None)
            {
                var result = new RecipientResult(recipient.Message.Id, recipient.Recipient, status, host, address, reply, tls, local);
                state.Record(recipient, result);
                unpublished.Add(result);
            }

            /// <summary>Records <paramref name="failure"/> (its status, reply, TLS posture and local reason) for each recipient.</summary>
            public void Fail(IEnumerable<PendingRecipient> recipients, string? host, IPAddress? address, DeliveryFailure failure)
            {
                foreach (var recipient in recipients)
                {
                    Complete(recipient, failure.Status, host, address, failure.Reply, failure.Tls, failure.Local);
                }
            }

            /// <summary>Hands results decided since the last call to the request's callback.</summary>
            public async Task PublishAsync(CancellationToken cancellationToken)
            {
                if (unpublished.Count == 0 || state.Request.ResultsReady is null)
                {
                    unpublished.Clear();
                    return;
                }
                var batch = unpublished.ToArray();
                unpublished.Clear();
                await state.Request.ResultsReady(batch, cancellationToken);
            }
        }

        private static RecipientResult NotAttempted(PendingRecipient p)
        {
            var failure = DeliveryFailure.Of(DeliveryFailureKind.NotAttempted, "not attempted");
            return new RecipientResult(p.Message.Id, p.Recipient, failure.Status, null, null, failure.Reply, failure.Tls, failure.Local);
        }

        public DeliveryOutcome ToOutcome() => new()
        {
            Recipients = everyone.Select(p => results.TryGetValue(p, out var r) ? r : NotAttempted(p)).ToArray(),
            RecipientDomainResult = RecipientDomainResult,
            HostResults = HostResults,
            Connections = Connections,
        };
    }
}
