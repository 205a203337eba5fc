using CloudDelivery.Addressing;

namespace CloudDelivery.Dane;

/// <summary>The reference identifiers a DANE-TA certificate may carry (RFC 7672 §3.2.2).</summary>
public static class DaneNames
{
    /// <summary>
    /// The names a DANE-TA certificate may carry, depending on whether there was an MX record and which
    /// CNAME expansions were DNSSEC-authentic (RFC 7672 §3.2.2). The first is also the SNI name. Delivery
    /// and the probe both use this one rule.
    /// </summary>
    public static IReadOnlyList<Domain> Allowed(bool haveMx, bool expandedNextHopAuthentic, bool expandedTlsaBaseAuthentic, Domain originalNextHop, Domain expandedNextHop, Domain originalTlsaBase, Domain expandedTlsaBase)
    {
        var names = new List<Domain>();
        if (!haveMx)
        {
            // Implicit MX: the host is the domain; its own name, and its authentic CNAME target (§3.2.2).
            if (expandedTlsaBaseAuthentic && originalTlsaBase != expandedTlsaBase)
            {
                names.Add(expandedTlsaBase);
            }
            names.Add(originalTlsaBase);
            return names;
        }
        if (!expandedNextHopAuthentic)
        {
            return [originalNextHop];
        }
        if (expandedTlsaBaseAuthentic)
        {
            names.Add(expandedTlsaBase);
        }
        if (expandedTlsaBase != originalTlsaBase)
        {
            names.Add(originalTlsaBase);
        }
        names.Add(originalNextHop);
        if (originalNextHop != expandedNextHop)
        {
            names.Add(expandedNextHop);
        }
        return names.Distinct().ToArray();
    }
}
