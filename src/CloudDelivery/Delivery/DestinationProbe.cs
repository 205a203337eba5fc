using System.Net;
using System.Net.Sockets;
using CloudDelivery.Addressing;
using CloudDelivery.MtaSts;
using CloudDelivery.Smtp;
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

    public string? Error { get; init; }
}

/// <summary>What a probe of a recipient domain found.</summary>
public sealed class DomainProbe
{
    public required string Domain { get; init; }

    public bool HaveMx { get; init; }

    public bool MxAuthentic { get; init; }

    public string? ExpandedDomain { get; init; }

    public string? DestinationError { get; init; }

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
            hosts.Add(await ProbeHostAsync(resolver, destinations, host, policy, cancellationToken));
        }
        return new DomainProbe
        {
            Domain = domain.Ascii,
            HaveMx = destinations.HaveMx,
            MxAuthentic = destinations.OriginalNextHopAuthentic && destinations.ExpandedNextHopAuthentic,
            ExpandedDomain = destinations.ExpandedNextHop?.Ascii,
            DestinationError = destinations.Error?.Message,
            MtaStsMode = policy?.Mode.ToString().ToLowerInvariant(),
            MtaStsPolicy = policy?.Lines ?? [],
            MtaStsNote = note,
            Hosts = hosts,
        };
    }

    private async Task<HostProbe> ProbeHostAsync(DestinationResolver resolver, DestinationSet destinations, DeliveryHost host, MtaStsPolicy? policy, CancellationToken cancellationToken)
    {
        var addresses = await resolver.GatherAddressesAsync(host, null, cancellationToken);
        var matches = policy is null || policy.Mode == MtaStsMode.None || host.Name is null ? (bool?)null : policy.Matches(host.Name);
        TlsaGathering? tlsa = null;
        var authentic = addresses.Error is null && addresses.Authentic && destinations.OriginalNextHopAuthentic && (!destinations.HaveMx || destinations.ExpandedNextHopAuthentic);
        if (authentic && host.Name is not null)
        {
            tlsa = await resolver.GatherTlsaAsync(host.Name, destinations.ExpandedNextHopAuthentic && addresses.ExpandedAuthentic, addresses.ExpandedHost, cancellationToken);
        }
        var probe = new HostProbe
        {
            Host = host.Display,
            Preference = host.Preference,
            AddressesAuthentic = addresses.Authentic,
            Addresses = addresses.Addresses.Select(a => a.ToString()).ToArray(),
            MatchesMtaStsPolicy = matches,
            TlsaRecords = tlsa?.AllRecords.Select(r => r.ToString()).ToArray() ?? [],
            DaneRequired = tlsa?.DaneRequired ?? false,
            TlsaAuthentic = authentic,
            TlsaError = tlsa?.Error?.Message,
            Error = addresses.Error?.Message,
        };
        if (addresses.Error is not null)
        {
            return probe;
        }

        foreach (var address in addresses.Addresses)
        {
            if (engine.Options.AddressPolicy.Refusal(address) is { } refusal)
            {
                probe = probe with { Error = refusal };
                continue;
            }
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(engine.Options.ConnectTimeout);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, engine.Options.SmtpPort), timeout.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                probe = probe with { Error = $"connecting to {address}: {e.Message}" };
                continue;
            }
            // Verification errors are only observed here, never fatal: the probe reports what it saw.
            var plan = new TlsVerificationPlan
            {
                DaneRecords = tlsa is { DaneRequired: true, Error: null } ? tlsa.Records : null,
                DaneAllowedNames = [host.Display],
                IgnoreVerificationErrors = true,
                ExtraTrustRoots = engine.Options.ExtraTrustRoots,
            };
            var scratch = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.NoPolicyFound, Domain = host.Display });
            try
            {
                await using var session = await SmtpSession.ConnectAsync(
                    socket,
                    host.Display,
                    TlsMode.Opportunistic,
                    plan,
                    new SmtpSessionOptions { EhloHostname = engine.Options.EhloHostname, CommandTimeout = engine.Options.CommandTimeout, SessionTimeout = engine.Options.SessionTimeout },
                    scratch,
                    scratch,
                    cancellationToken);
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
                    TlsVersion = session.IsTls ? session.TlsProtocol.ToString() : null,
                    CertificateSubject = session.CertificateSubject,
                    Verification = session.Verification,
                    PkixError = session.PkixError,
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
}
