using CloudDelivery.Addressing;
using CloudDelivery.Dns;

namespace CloudDelivery.Dane;

/// <summary>TLSA records found for a host (RFC 7672 §2.2), or why none apply.</summary>
public sealed class TlsaGathering
{
    /// <summary>DANE applies: TLSA records exist (DNSSEC-authentic), or looking them up failed in a way that must not be ignored.</summary>
    public bool DaneRequired { get; init; }

    /// <summary>The usable records (may be empty when DANE is required).</summary>
    public IReadOnlyList<TlsaRecord> Records { get; init; } = [];

    /// <summary>All records found, usable or not, for the TLSRPT policy string.</summary>
    public IReadOnlyList<TlsaRecord> AllRecords { get; init; } = [];

    /// <summary>The name whose "_25._tcp." prefix held the records.</summary>
    public required Domain BaseDomain { get; init; }

    public DestinationError? Error { get; init; }
}

/// <summary>Gathers the TLSA records of an MX host for DANE (RFC 7672 §2.2), through the one resolver.</summary>
public sealed class TlsaGatherer(DnsResolver resolver)
{
    /// <summary>
    /// Finds TLSA records for <paramref name="host"/> at "_25._tcp.", first at the CNAME-expanded host
    /// name when that expansion was authentic, else at the MX name itself (RFC 7672 §2.2.2). Only
    /// DNSSEC-authentic answers count; an insecure answer means "no DANE" rather than an error.
    /// </summary>
    public async Task<TlsaGathering> GatherAsync(Domain host, bool expandedAuthentic, Domain? expandedHost, CancellationToken cancellationToken)
    {
        var baseDomain = host;
        (IReadOnlyList<TlsaRecord> Records, DestinationError? Error) found;
        if (expandedHost is null || expandedHost == host || !expandedAuthentic)
        {
            found = await LookupTlsaAsync(host, cancellationToken);
        }
        else
        {
            baseDomain = expandedHost;
            found = await LookupTlsaAsync(expandedHost, cancellationToken);
            if (found.Error is null && found.Records.Count == 0)
            {
                baseDomain = host;
                found = await LookupTlsaAsync(host, cancellationToken);
            }
        }
        if (found.Error is not null)
        {
            // A failed TLSA lookup at an authentic host cannot be told apart from an attack: DANE stays required.
            return new TlsaGathering { DaneRequired = true, BaseDomain = baseDomain, Error = found.Error };
        }
        if (found.Records.Count == 0)
        {
            return new TlsaGathering { DaneRequired = false, BaseDomain = baseDomain };
        }
        return new TlsaGathering
        {
            DaneRequired = true,
            Records = DaneTlsaRecords.Usable(found.Records),
            AllRecords = found.Records,
            BaseDomain = baseDomain,
        };
    }

    private async Task<(IReadOnlyList<TlsaRecord> Records, DestinationError? Error)> LookupTlsaAsync(Domain host, CancellationToken cancellationToken)
    {
        var name = "_25._tcp." + host.Ascii;
        for (var depth = 0; ; depth++)
        {
            var cname = await resolver.LookupCnameAsync(name, cancellationToken);
            if (cname.Failed)
            {
                return ([], new DestinationError($"CNAME lookup for {name}: {cname.Error}", false, cname.ExtendedError));
            }
            if (!cname.Authentic)
            {
                // Not DNSSEC-signed: the host does not do DANE (RFC 7672 §2.2).
                return ([], null);
            }
            if (!cname.Found)
            {
                break;
            }
            if (depth == 10)
            {
                return ([], new DestinationError($"too many CNAMEs at {name}", false));
            }
            name = cname.Records[0];
        }
        var tlsa = await resolver.LookupTlsaAsync(name, cancellationToken);
        if (tlsa.NotFound)
        {
            return ([], null);
        }
        if (tlsa.Failed)
        {
            return ([], new DestinationError($"TLSA lookup for {name}: {tlsa.Error}", false, tlsa.ExtendedError));
        }
        return tlsa.Authentic ? (tlsa.Records, null) : ([], null);
    }
}
