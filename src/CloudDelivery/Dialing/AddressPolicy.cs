using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Dialing;

/// <summary>
/// Decides which IP addresses CloudDelivery may connect to. A DNS answer is data from strangers: an MX or
/// an MTA-STS host that resolves to 10.0.0.5, 127.0.0.1 or the cloud metadata endpoint 169.254.169.254
/// would otherwise turn the MTA into a tool for probing the network it runs in (server-side request
/// forgery). Such addresses are refused unless the operator allows them (tests on loopback do).
/// </summary>
public sealed class AddressPolicy
{
    /// <summary>Refuses private, loopback, link-local, metadata and other non-global addresses.</summary>
    public static readonly AddressPolicy PublicOnly = new(allowPrivateAddresses: false);

    /// <summary>Permits every unicast address, for tests and closed networks.</summary>
    public static readonly AddressPolicy AllowPrivate = new(allowPrivateAddresses: true);

    /// <summary>
    /// Permits every address: for a destination the operator chose (a smarthost), where the policy for
    /// strangers' DNS answers does not apply.
    /// </summary>
    public static readonly AddressPolicy Unrestricted = new(allowPrivateAddresses: true, unrestricted: true);

    public AddressPolicy(bool allowPrivateAddresses)
        : this(allowPrivateAddresses, unrestricted: false)
    {
    }

    private AddressPolicy(bool allowPrivateAddresses, bool unrestricted)
    {
        AllowPrivateAddresses = allowPrivateAddresses;
        this.unrestricted = unrestricted;
    }

    private readonly bool unrestricted;

    public bool AllowPrivateAddresses { get; }

    /// <summary>Returns null when <paramref name="address"/> may be dialled, else why not.</summary>
    public string? Refusal(IPAddress address)
    {
        if (unrestricted)
        {
            return null;
        }
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        if (IsUnusable(address))
        {
            return $"address {address} is not a unicast address";
        }
        if (!AllowPrivateAddresses && NonGlobalKind(address) is { } kind)
        {
            return $"address {address} is {kind}; refusing to dial it (allow private addresses to permit)";
        }
        return null;
    }

    private static bool IsUnusable(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return b[0] == 0 || b[0] >= 224; // "this network", multicast, reserved, broadcast
        }
        return address.Equals(IPAddress.IPv6None) || address.IsIPv6Multicast;
    }

    private static string? NonGlobalKind(IPAddress address)
    {
        if (IPAddress.IsLoopback(address))
        {
            return "loopback";
        }
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return (b[0], b[1]) switch
            {
                (10, _) => "private (RFC 1918)",
                (172, >= 16 and <= 31) => "private (RFC 1918)",
                (192, 168) => "private (RFC 1918)",
                (169, 254) => "link-local or a cloud metadata endpoint (RFC 3927)",
                (100, >= 64 and <= 127) => "shared address space (RFC 6598)",
                (192, 0) when b[2] == 0 => "IETF protocol assignment (RFC 6890)",
                _ => null,
            };
        }
        if (address.IsIPv6LinkLocal || address.IsIPv6SiteLocal)
        {
            return "link-local";
        }
        if (address.IsIPv6UniqueLocal)
        {
            return "unique local (RFC 4193)";
        }
        return null;
    }
}
