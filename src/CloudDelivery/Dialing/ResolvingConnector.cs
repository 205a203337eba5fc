using System.Net.Sockets;
using CloudDelivery.Dns;

namespace CloudDelivery.Dialing;

/// <summary>What went wrong while connecting, kept for error messages and TLSRPT reason codes.</summary>
public sealed class ConnectAttempt
{
    /// <summary>The host name does not exist (NXDOMAIN or no addresses).</summary>
    public bool NoSuchHost { get; set; }

    /// <summary>The resolver's extended error when the address lookup failed (e.g. DNSSEC bogus).</summary>
    public ExtendedDnsError? DnsError { get; set; }

    /// <summary>The last reason a lookup, refusal or connection failed.</summary>
    public string? Error { get; set; }
}

/// <summary>
/// Opens TCP connections for HTTPS clients (MTA-STS policy fetches, TLSRPT report posts) the way the
/// delivery engine dials MX hosts: addresses come from the one configured resolver, never from the
/// system's, and each must pass the address policy, so a hostile DNS answer cannot point CloudDelivery at
/// its own network. Plug it into <see cref="SocketsHttpHandler.ConnectCallback"/>.
/// </summary>
public sealed class ResolvingConnector(DnsResolver resolver, AddressPolicy addressPolicy)
{
    // No connect timeout of its own: the HTTP client's deadline covers the connect.
    private readonly Dialer dialer = new(addressPolicy);

    /// <summary>Connects to the first reachable permitted address of <paramref name="host"/>.</summary>
    /// <exception cref="HttpRequestException">No address could be connected; <paramref name="attempt"/> says why.</exception>
    public async ValueTask<Stream> ConnectAsync(string host, int port, ConnectAttempt attempt, CancellationToken cancellationToken)
    {
        var lookup = await resolver.LookupAddressesAsync(host, cancellationToken);
        if (lookup.NotFound)
        {
            attempt.NoSuchHost = true;
            attempt.Error = $"{host} does not exist";
            throw new HttpRequestException(attempt.Error);
        }
        if (lookup.Failed)
        {
            attempt.DnsError = lookup.ExtendedError;
            attempt.Error = $"resolving {host}: {lookup.Error}";
            throw new HttpRequestException(attempt.Error);
        }
        var dialled = await dialer.DialAsync(lookup.Records, port, cancellationToken);
        if (dialled.Socket is { } socket)
        {
            return new NetworkStream(socket, ownsSocket: true);
        }
        attempt.Error = dialled.LastFailure switch
        {
            { Outcome: DialOutcome.RefusedByPolicy } refused => refused.Reason,
            { } failed => $"connecting to {failed.Address}: {failed.Reason}",
            null => null,
        };
        throw new HttpRequestException(attempt.Error ?? $"no usable address for {host}");
    }
}
