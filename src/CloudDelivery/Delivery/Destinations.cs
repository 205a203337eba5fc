using System.Net;
using System.Net.Sockets;
using CloudDelivery.Addressing;
using CloudDelivery.Dns;

namespace CloudDelivery.Delivery;

/// <summary>A host to try: an MX target (with its preference), the domain itself (implicit MX), or an IP literal.</summary>
public sealed record DeliveryHost(Domain? Name, IPAddress? Address, int Preference)
{
    /// <summary>The name for logs, TLSRPT and results: the ASCII host name or the IP.</summary>
    public string Display => Name?.Ascii ?? Address!.ToString();
}

/// <summary>
/// The hosts for a recipient domain (RFC 5321 §5.1), with what the engine needs to know about DNSSEC:
/// whether the answers for the original name and for the CNAME-expanded name were authentic.
/// </summary>
public sealed class DestinationSet
{
    public bool HaveMx { get; init; }

    public bool OriginalNextHopAuthentic { get; init; }

    public bool ExpandedNextHopAuthentic { get; init; }

    /// <summary>The recipient domain after following CNAMEs (the same as the original when there were none).</summary>
    public Domain? ExpandedNextHop { get; init; }

    public IReadOnlyList<DeliveryHost> Hosts { get; init; } = [];

    public DestinationError? Error { get; init; }
}

/// <summary>The addresses of one host, ordered for dialling, and their DNSSEC status.</summary>
public sealed class HostAddresses
{
    public bool Authentic { get; init; }

    public bool ExpandedAuthentic { get; init; }

    /// <summary>The host name after following CNAMEs.</summary>
    public Domain? ExpandedHost { get; init; }

    public IReadOnlyList<IPAddress> Addresses { get; init; } = [];

    /// <summary>The host has both IPv4 and IPv6 addresses.</summary>
    public bool DualStack { get; init; }

    public DestinationError? Error { get; init; }
}

/// <summary>
/// DNS gathering for direct delivery: MX hosts of a recipient domain, addresses of a host, TLSA records
/// of a host, and the names a DANE certificate may carry. Everything goes through the one resolver.
/// </summary>
public sealed class DestinationResolver
{
    /// <summary>CNAME chains longer than this are treated as broken (RFC 1034 §5.2.2 warns about loops).</summary>
    public const int MaxCnameDepth = 16;

    /// <summary>More MX hosts than this are not tried: a hostile zone could otherwise make one attempt endless.</summary>
    public const int MaxMxHosts = 16;

    private readonly DnsResolver resolver;
    private readonly Random random;

    public DestinationResolver(DnsResolver resolver, Random? random = null)
    {
        this.resolver = resolver;
        this.random = random ?? Random.Shared;
    }

    /// <summary>
    /// Resolves the hosts to try for <paramref name="nextHop"/>: CNAMEs followed, MX records sorted by
    /// preference and shuffled within equal preference (RFC 5321 §5.1), the domain itself when there is no
    /// MX (implicit MX), and a permanent failure for a null MX (RFC 7505 §3).
    /// </summary>
    public async Task<DestinationSet> GatherDestinationsAsync(NextHop nextHop, CancellationToken cancellationToken)
    {
        if (nextHop.Address is not null)
        {
            return new DestinationSet { Hosts = [new DeliveryHost(null, nextHop.Address, -1)] };
        }
        var recipientDomain = nextHop.Name!;
        var originalAuthentic = true;
        var expandedAuthentic = true;
        var expanded = recipientDomain;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var depth = 0; ; depth++)
        {
            if (!seen.Add(expanded.Ascii))
            {
                return Failed($"CNAME loop for {recipientDomain}: {expanded} seen before", permanent: false);
            }
            if (depth == MaxCnameDepth)
            {
                return Failed($"too many CNAMEs for {recipientDomain}, last was {expanded}", permanent: false);
            }

            var cname = await resolver.LookupCnameAsync(expanded.Fqdn, cancellationToken);
            if (depth == 0)
            {
                originalAuthentic &= cname.Authentic;
            }
            expandedAuthentic &= cname.Authentic;
            if (cname.Failed)
            {
                return Failed($"CNAME lookup for {expanded}: {cname.Error}", false, cname.ExtendedError);
            }
            if (cname.NameDoesNotExist)
            {
                return NoSuchDomain();
            }
            if (cname.Found)
            {
                if (!Domain.TryParse(cname.Records[0], out var target, out var error))
                {
                    return Failed($"CNAME of {expanded} is not a valid name: {error}", false);
                }
                expanded = target;
                continue;
            }

            var mx = await resolver.LookupMxAsync(expanded.Fqdn, cancellationToken);
            if (depth == 0)
            {
                originalAuthentic &= mx.Authentic;
            }
            expandedAuthentic &= mx.Authentic;
            if (mx.Failed)
            {
                return Failed($"MX lookup for {expanded}: {mx.Error}", false, mx.ExtendedError);
            }
            if (mx.NameDoesNotExist)
            {
                return NoSuchDomain();
            }
            return FromMxAnswer(recipientDomain, expanded, originalAuthentic, expandedAuthentic, mx);
        }

        DestinationSet Failed(string message, bool permanent, ExtendedDnsError? extended = null, DestinationFailure kind = DestinationFailure.LookupFailed) => new()
        {
            OriginalNextHopAuthentic = originalAuthentic,
            ExpandedNextHopAuthentic = expandedAuthentic,
            ExpandedNextHop = expanded,
            Error = new DestinationError(message, permanent, extended, kind),
        };

        DestinationSet NoSuchDomain() => Failed(
            expanded == recipientDomain ? $"domain {recipientDomain} does not exist (NXDOMAIN)" : $"domain {recipientDomain} does not exist: its CNAME {expanded} is NXDOMAIN",
            permanent: true,
            kind: DestinationFailure.NoSuchDomain);
    }

    /// <summary>
    /// The destinations an MX answer at <paramref name="expanded"/> names: the domain itself without MX
    /// records, nothing for a null MX, else the MX hosts in the order they are tried.
    /// </summary>
    private DestinationSet FromMxAnswer(Domain recipientDomain, Domain expanded, bool originalAuthentic, bool expandedAuthentic, DnsLookup<MxRecord> mx)
    {
        if (mx.NotFound)
        {
            // No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
            return new DestinationSet
            {
                HaveMx = false,
                OriginalNextHopAuthentic = originalAuthentic,
                ExpandedNextHopAuthentic = expandedAuthentic,
                ExpandedNextHop = expanded,
                Hosts = [new DeliveryHost(expanded, null, -1)],
            };
        }
        if (mx.Records.Count == 1 && mx.Records[0].Exchange is "" or ".")
        {
            // Null MX: the domain accepts no mail (RFC 7505 §3); no connection is made.
            return new DestinationSet
            {
                HaveMx = true,
                OriginalNextHopAuthentic = originalAuthentic,
                ExpandedNextHopAuthentic = expandedAuthentic,
                ExpandedNextHop = expanded,
                Error = new DestinationError($"domain {recipientDomain} does not accept mail (null MX, RFC 7505)", Permanent: true, Kind: DestinationFailure.NullMx),
            };
        }
        var hosts = new List<DeliveryHost>();
        foreach (var record in mx.Records)
        {
            if (!Domain.TryParse(record.Exchange, out var host, out var error))
            {
                return new DestinationSet
                {
                    HaveMx = true,
                    OriginalNextHopAuthentic = originalAuthentic,
                    ExpandedNextHopAuthentic = expandedAuthentic,
                    ExpandedNextHop = expanded,
                    Error = new DestinationError($"invalid host name in MX record of {expanded}: {error}", Permanent: true, Kind: DestinationFailure.RefusesMail),
                };
            }
            hosts.Add(new DeliveryHost(host, null, record.Preference));
        }
        // Lower preference first; equal preferences in random order to spread load (RFC 5321 §5.1).
        var ordered = hosts
            .Select(h => (Host: h, Tie: random.Next()))
            .OrderBy(h => h.Host.Preference)
            .ThenBy(h => h.Tie)
            .Select(h => h.Host)
            .DistinctBy(h => h.Name!.Ascii)
            .Take(MaxMxHosts)
            .ToArray();
        return new DestinationSet
        {
            HaveMx = true,
            OriginalNextHopAuthentic = originalAuthentic,
            ExpandedNextHopAuthentic = expandedAuthentic,
            ExpandedNextHop = expanded,
            Hosts = ordered,
        };
    }

    /// <summary>
    /// Looks up the addresses of <paramref name="host"/> (following CNAMEs) and orders them for dialling:
    /// after an earlier attempt, the other address family first, so a block of one of our addresses does not
    /// keep failing every attempt (the practice of RFC 3974 §3).
    /// </summary>
    public async Task<HostAddresses> GatherAddressesAsync(DeliveryHost host, IReadOnlyList<IPAddress>? previouslyDialled, CancellationToken cancellationToken)
    {
        if (host.Address is not null)
        {
            return new HostAddresses { Addresses = [host.Address] };
        }
        var authentic = true;
        var expandedAuthentic = true;
        var name = host.Name!;
        for (var depth = 0; ; depth++)
        {
            var cname = await resolver.LookupCnameAsync(name.Fqdn, cancellationToken);
            if (depth == 0)
            {
                authentic = cname.Authentic;
            }
            expandedAuthentic &= cname.Authentic;
            if (cname.Failed)
            {
                return new HostAddresses { Authentic = authentic, ExpandedAuthentic = expandedAuthentic, Error = new DestinationError($"CNAME lookup for {name}: {cname.Error}", false, cname.ExtendedError) };
            }
            if (!cname.Found)
            {
                break;
            }
            if (depth >= 10 || !Domain.TryParse(cname.Records[0], out var target, out _))
            {
                return new HostAddresses { Authentic = authentic, ExpandedAuthentic = expandedAuthentic, Error = new DestinationError($"bad CNAME chain for host {host.Display}", false) };
            }
            name = target;
        }

        var lookup = await resolver.LookupAddressesAsync(name.Fqdn, cancellationToken);
        authentic &= lookup.Authentic;
        expandedAuthentic &= lookup.Authentic;
        if (!lookup.Found)
        {
            var reason = lookup.Failed ? lookup.Error : lookup.NameDoesNotExist ? "name does not exist (NXDOMAIN)" : "no A or AAAA records";
            var kind = lookup.Failed ? DestinationFailure.LookupFailed : DestinationFailure.NoAddresses;
            return new HostAddresses { Authentic = authentic, ExpandedAuthentic = expandedAuthentic, ExpandedHost = name, Error = new DestinationError($"looking up addresses of {name}: {reason}", false, lookup.ExtendedError, kind) };
        }
        var addresses = lookup.Records.Distinct().ToList();
        var have4 = addresses.Any(a => a.AddressFamily == AddressFamily.InterNetwork);
        var have6 = addresses.Any(a => a.AddressFamily == AddressFamily.InterNetworkV6);
        if (previouslyDialled is { Count: > 0 })
        {
            var last = previouslyDialled[^1];
            var lastIs4 = last.AddressFamily == AddressFamily.InterNetwork;
            // The previous address is worth retrying only if its family was used just once so far.
            var preferLast = previouslyDialled.Count(a => (a.AddressFamily == AddressFamily.InterNetwork) == lastIs4) == 1;
            addresses = addresses
                .Select((a, i) => (Address: a, Index: i))
                .OrderBy(x => (x.Address.AddressFamily == AddressFamily.InterNetwork) == lastIs4 ? 1 : 0)
                .ThenBy(x => preferLast && x.Address.Equals(last) ? 0 : 1)
                .ThenBy(x => x.Index)
                .Select(x => x.Address)
                .ToList();
        }
        return new HostAddresses
        {
            Authentic = authentic,
            ExpandedAuthentic = expandedAuthentic,
            ExpandedHost = name,
            Addresses = addresses,
            DualStack = have4 && have6,
        };
    }
}
