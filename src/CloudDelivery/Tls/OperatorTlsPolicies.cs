namespace CloudDelivery.Tls;

/// <summary>
/// The operator's TLS policies per destination (recipient domain or MX host suffix) and per sender domain,
/// as Postfix's smtp_tls_policy_maps: raise the floor (encrypt, verify, dane-only) or lower it for a named
/// broken receiver (none). None of them lowers what MTA-STS enforce, DANE or REQUIRETLS demand.
/// </summary>
public sealed class OperatorTlsPolicies
{
    /// <summary>No operator policy: today's opportunistic default everywhere.</summary>
    public static OperatorTlsPolicies None { get; } = new();
}
