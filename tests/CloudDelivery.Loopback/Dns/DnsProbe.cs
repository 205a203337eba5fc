using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace CloudDelivery.Loopback.Dns;

/// <summary>The header bits of an answer that tell whether a DNS server is up and validating.</summary>
/// <param name="ResponseCode">RCODE (RFC 1035 §4.1.1): 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED.</param>
/// <param name="Authoritative">AA: the server holds the zone (RFC 1035 §4.1.1).</param>
/// <param name="AuthenticData">AD: a validating resolver checked the signatures (RFC 4035 §3.2.3).</param>
public sealed record DnsProbeAnswer(int ResponseCode, bool Authoritative, bool AuthenticData);

/// <summary>
/// One UDP question with the DO bit (RFC 3225) for readiness checks of the servers the tests start. It
/// reads only the header: tests that care about records ask through CloudDelivery's own resolver.
/// </summary>
public static class DnsProbe
{
    /// <summary>The SOA type code (RFC 1035 §3.2.2).</summary>
    public const ushort Soa = 6;

    /// <summary>Asks <paramref name="server"/> once; null when no matching answer came within <paramref name="timeout"/>.</summary>
    public static async Task<DnsProbeAnswer?> AskAsync(IPEndPoint server, string name, ushort type, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var id = (ushort)RandomNumberGenerator.GetInt32(ushort.MaxValue + 1);
        var query = Query(id, name, type);
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(server);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var buffer = new byte[4096];
        try
        {
            await socket.SendAsync(query, SocketFlags.None, deadline.Token);
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
                if (received >= 12 && BinaryPrimitives.ReadUInt16BigEndian(buffer) == id && (buffer[2] & 0x80) != 0)
                {
                    return new DnsProbeAnswer(buffer[3] & 0x0f, (buffer[2] & 0x04) != 0, (buffer[3] & 0x20) != 0);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (SocketException)
        {
            // ICMP port unreachable: nothing listens yet.
            return null;
        }
    }

    private static byte[] Query(ushort id, string name, ushort type)
    {
        // Header (RFC 1035 §4.1.1): RD set, one question, one additional record (the OPT).
        var message = new List<byte> { (byte)(id >> 8), (byte)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1 };
        foreach (var label in name.TrimEnd('.').Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            var bytes = Encoding.ASCII.GetBytes(label);
            message.Add((byte)bytes.Length);
            message.AddRange(bytes);
        }
        message.Add(0);
        message.AddRange([(byte)(type >> 8), (byte)type, 0, 1]);
        // OPT pseudo-record (RFC 6891 §6.1.2): root name, type 41, 1232-byte payload, DO bit (RFC 3225 §3).
        message.AddRange([0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        return [.. message];
    }
}
