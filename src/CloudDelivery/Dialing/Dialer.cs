using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Dialing;

/// <summary>How one dial ended.</summary>
public enum DialOutcome
{
    Connected,

    /// <summary>The connect took longer than the dialler's timeout.</summary>
    TimedOut,

    /// <summary>The address policy forbade the address; nothing was sent.</summary>
    RefusedByPolicy,

    /// <summary>The connect failed (refused, unreachable, reset).</summary>
    Failed,
}

/// <summary>Why the last address tried could not be connected.</summary>
/// <param name="Address">The address.</param>
/// <param name="Outcome">Timed out, refused by policy, or failed.</param>
/// <param name="Reason">The policy's refusal, "connect timed out", or the socket error's message.</param>
/// <param name="Cause">The exception of a failed or timed-out connect.</param>
public sealed record DialFailure(IPAddress Address, DialOutcome Outcome, string Reason, Exception? Cause = null);

/// <summary>The connected socket and its address, or why the last address failed (null when there were none).</summary>
public sealed record DialResult(Socket? Socket, IPAddress? Address, DialFailure? LastFailure);

/// <summary>
/// The one way CloudDelivery opens TCP connections: to MX hosts, to a smarthost and for HTTPS (MTA-STS
/// fetches, TLSRPT posts). Every address passes the address policy first, because a DNS answer is data
/// from strangers (see <see cref="AddressPolicy"/>); each connect has its own timeout; and, when a counter
/// is given, each attempt is counted with its result (ok, timeout, refused, error).
/// </summary>
public sealed class Dialer(AddressPolicy addressPolicy, TimeSpan? connectTimeout = null, Counter<long>? connections = null)
{
    /// <summary>The first address of each family, in the preferred order (RFC 5321 §5.1 leaves the strategy open).</summary>
    public static IEnumerable<IPAddress> OnePerFamily(IEnumerable<IPAddress> addresses) =>
        addresses.DistinctBy(a => a.AddressFamily);

    /// <summary>Tries <paramref name="addresses"/> in order until one connects.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<DialResult> DialAsync(IEnumerable<IPAddress> addresses, int port, CancellationToken cancellationToken)
    {
        DialFailure? last = null;
        foreach (var address in addresses)
        {
            if (addressPolicy.Refusal(address) is { } refusal)
            {
                last = new DialFailure(address, DialOutcome.RefusedByPolicy, refusal);
                continue;
            }
            var (socket, failure) = await ConnectAsync(address, port, cancellationToken);
            if (socket is not null)
            {
                return new DialResult(socket, address, null);
            }
            last = failure;
        }
        return new DialResult(null, null, last);
    }

    private async Task<(Socket? Socket, DialFailure? Failure)> ConnectAsync(IPAddress address, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (connectTimeout is { } limit)
        {
            timeout.CancelAfter(limit);
        }
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
            Count("ok");
            return (socket, null);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            Count("timeout");
            return (null, new DialFailure(address, DialOutcome.TimedOut, "connect timed out", e));
        }
        catch (SocketException e)
        {
            socket.Dispose();
            Count(e.SocketErrorCode == SocketError.ConnectionRefused ? "refused" : "error");
            return (null, new DialFailure(address, DialOutcome.Failed, e.Message, e));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private void Count(string result) => connections?.Add(1, new KeyValuePair<string, object?>("result", result));
}
