using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CloudDelivery.Loopback.Dns;

/// <summary>A query the server received.</summary>
public sealed record DnsQueryLogEntry(string Name, string Type, string Transport);

/// <summary>
/// A DNS server on loopback (UDP and TCP on one port) that answers like a validating recursive resolver
/// from a <see cref="DnsZone"/>: it follows CNAMEs, sets the AD bit for names marked secure when the query
/// asks for DNSSEC (DO bit, RFC 6840 §5.7), returns SERVFAIL with an RFC 8914 extended error for bogus
/// names, and truncates UDP answers that do not fit (RFC 1035 §4.2.1) so clients retry over TCP.
/// </summary>
public sealed class LoopbackDnsServer : IAsyncDisposable
{
    private const int ResponseCodeFormErr = 1;
    private const int ResponseCodeServFail = 2;
    private const int ResponseCodeNxDomain = 3;

    private readonly Socket udp;
    private readonly TcpListener tcp;
    private readonly CancellationTokenSource stopping = new();
    private readonly ConcurrentQueue<DnsQueryLogEntry> queries = new();
    private readonly List<Task> loops = [];

    private LoopbackDnsServer(DnsZone zone, Socket udp, TcpListener tcp)
    {
        Zone = zone;
        this.udp = udp;
        this.tcp = tcp;
        EndPoint = (IPEndPoint)udp.LocalEndPoint!;
    }

    public IPEndPoint EndPoint { get; }

    public DnsZone Zone { get; }

    /// <summary>Every query received, in order.</summary>
    public IReadOnlyList<DnsQueryLogEntry> Queries => queries.ToArray();

    public static Task<LoopbackDnsServer> StartAsync(DnsZone zone, IPAddress? address = null, int port = 0, CancellationToken cancellationToken = default)
    {
        address ??= IPAddress.Loopback;
        // Bind UDP and TCP to the same port; an ephemeral UDP port may be taken for TCP, so retry a few times.
        for (var attempt = 0; ; attempt++)
        {
            var udp = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(address, port));
            var bound = ((IPEndPoint)udp.LocalEndPoint!).Port;
            var tcp = new TcpListener(address, bound);
            try
            {
                tcp.Start();
            }
            catch (SocketException) when (port == 0 && attempt < 20)
            {
                udp.Dispose();
                continue;
            }
            var server = new LoopbackDnsServer(zone, udp, tcp);
            server.loops.Add(Task.Run(server.ServeUdpAsync, CancellationToken.None));
            server.loops.Add(Task.Run(server.ServeTcpAsync, CancellationToken.None));
            return Task.FromResult(server);
        }
    }

    private async Task ServeUdpAsync()
    {
        var buffer = new byte[4096];
        while (!stopping.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await udp.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(EndPoint.Address, 0), stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // e.g. ICMP port unreachable from an earlier answer
            }
            var response = Answer(buffer.AsSpan(0, received.ReceivedBytes), "udp");
            if (response is not null)
            {
                try
                {
                    await udp.SendToAsync(response, SocketFlags.None, received.RemoteEndPoint, stopping.Token);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
                {
                }
            }
        }
    }

    private Task ServeTcpAsync() => AcceptLoop.RunAsync(tcp, ServeTcpClientAsync, stopping.Token);

    private async Task ServeTcpClientAsync(Socket socket)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var lengthBuffer = new byte[2];
        // RFC 1035 §4.2.2: each message is preceded by a two-byte length; several may follow. A broken
        // peer ends in an exception that the accept loop absorbs.
        while (!stopping.IsCancellationRequested)
        {
            await stream.ReadExactlyAsync(lengthBuffer, stopping.Token);
            var length = BinaryPrimitives.ReadUInt16BigEndian(lengthBuffer);
            var message = new byte[length];
            await stream.ReadExactlyAsync(message, stopping.Token);
            var response = Answer(message, "tcp");
            if (response is null)
            {
                continue;
            }
            var framed = new byte[response.Length + 2];
            BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)response.Length);
            response.CopyTo(framed, 2);
            await stream.WriteAsync(framed, stopping.Token);
        }
    }

    /// <summary>Builds the response to one query, or null to stay silent.</summary>
    private byte[]? Answer(ReadOnlySpan<byte> query, string transport)
    {
        if (query.Length < 12)
        {
            return null; // not even a header: nothing to answer to
        }
        var id = BinaryPrimitives.ReadUInt16BigEndian(query);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(query[2..]);
        var questionCount = BinaryPrimitives.ReadUInt16BigEndian(query[4..]);
        var additionalCount = BinaryPrimitives.ReadUInt16BigEndian(query[10..]);
        if ((flags & 0x8000) != 0)
        {
            return null; // a response, not a query
        }
        var writer = new ResponseWriter(id, flags);
        if (questionCount != 1 || !TryReadName(query, 12, out var name, out var offset) || offset + 4 > query.Length)
        {
            return writer.Header(ResponseCodeFormErr, authentic: false, truncated: false).ToArray();
        }
        var type = BinaryPrimitives.ReadUInt16BigEndian(query[offset..]);
        var questionEnd = offset + 4;
        var (hasOpt, dnssecOk, udpSize) = ReadOpt(query, questionEnd, additionalCount);
        queries.Enqueue(new DnsQueryLogEntry(name, DnsRecordType.Name(type), transport));
        writer.Question(query[12..questionEnd]);

        var names = new List<string>();
        var current = name;
        var answers = new List<(string Name, ZoneRecord Record)>();
        var responseCode = 0;
        ZoneLookup lookup;
        for (var depth = 0; ; depth++)
        {
            names.Add(current);
            lookup = Zone.Lookup(current);
            switch (lookup.Failure)
            {
                case ZoneFailure.Silent:
                    return null;
                case ZoneFailure.Malformed:
                    return writer.Malformed();
                case ZoneFailure.ServFail:
                case ZoneFailure.Bogus:
                    writer.Reset();
                    writer.Question(query[12..questionEnd]);
                    if (hasOpt)
                    {
                        writer.Opt(dnssecOk, lookup.Failure == ZoneFailure.Bogus ? (lookup.ExtendedErrorCode, lookup.ExtendedErrorText) : null);
                    }
                    return writer.Finish(ResponseCodeServFail, authentic: false, udpLimit: int.MaxValue);
                default:
                    break;
            }
            var cname = lookup.Records.FirstOrDefault(r => r.Type == DnsRecordType.Cname);
            if (cname is not null && type != DnsRecordType.Cname && depth < 8)
            {
                answers.Add((current, cname));
                current = cname.Target!;
                continue;
            }
            answers.AddRange(lookup.Records.Where(r => r.Type == type).Select(r => (current, r)));
            if (!lookup.Exists)
            {
                responseCode = ResponseCodeNxDomain;
            }
            break;
        }
        foreach (var (owner, record) in answers)
        {
            writer.Record(owner, record);
        }
        if (hasOpt)
        {
            writer.Opt(dnssecOk, null);
        }
        // AD only for validated data, and only to clients that asked for DNSSEC (RFC 6840 §5.7).
        var authentic = (dnssecOk || (flags & 0x0020) != 0) && names.All(n => Zone.Lookup(n).Secure);
        var limit = transport == "tcp" ? int.MaxValue : hasOpt ? Math.Max(512, udpSize) : 512;
        return writer.Finish(responseCode, authentic, limit);
    }

    private static (bool HasOpt, bool DnssecOk, int UdpSize) ReadOpt(ReadOnlySpan<byte> query, int offset, int additionalCount)
    {
        for (var i = 0; i < additionalCount; i++)
        {
            if (!TryReadName(query, offset, out var name, out var next) || next + 10 > query.Length)
            {
                return (false, false, 512);
            }
            var type = BinaryPrimitives.ReadUInt16BigEndian(query[next..]);
            var klass = BinaryPrimitives.ReadUInt16BigEndian(query[(next + 2)..]);
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(query[(next + 4)..]);
            var length = BinaryPrimitives.ReadUInt16BigEndian(query[(next + 8)..]);
            if (type == DnsRecordType.Opt && name.Length == 0)
            {
                // RFC 6891 §6.1.3: the DO bit is the top bit of the TTL's low 16 bits.
                return (true, (ttl & 0x8000) != 0, klass);
            }
            offset = next + 10 + length;
        }
        return (false, false, 512);
    }

    private static bool TryReadName(ReadOnlySpan<byte> message, int offset, out string name, out int end)
    {
        var labels = new List<string>();
        end = -1;
        var jumps = 0;
        while (true)
        {
            if (offset >= message.Length)
            {
                name = string.Empty;
                return false;
            }
            var length = message[offset];
            if (length == 0)
            {
                if (end < 0)
                {
                    end = offset + 1;
                }
                break;
            }
            if ((length & 0xC0) == 0xC0)
            {
                // Compression pointer (RFC 1035 §4.1.4); bounded to defeat loops.
                if (offset + 1 >= message.Length || ++jumps > 16)
                {
                    name = string.Empty;
                    return false;
                }
                if (end < 0)
                {
                    end = offset + 2;
                }
                offset = ((length & 0x3F) << 8) | message[offset + 1];
                continue;
            }
            if (length > 63 || offset + 1 + length > message.Length)
            {
                name = string.Empty;
                return false;
            }
            labels.Add(Encoding.ASCII.GetString(message.Slice(offset + 1, length)));
            offset += 1 + length;
        }
        name = string.Join('.', labels).ToLowerInvariant();
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        udp.Dispose();
        tcp.Stop();
        try
        {
            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }
        stopping.Dispose();
    }

    /// <summary>Writes a response message section by section.</summary>
    private sealed class ResponseWriter(ushort id, ushort queryFlags)
    {
        private readonly List<byte> body = [];
        private int answerCount;
        private int additionalCount;
        private int questionLength;

        public void Reset()
        {
            body.Clear();
            answerCount = 0;
            additionalCount = 0;
            questionLength = 0;
        }

        public void Question(ReadOnlySpan<byte> question)
        {
            body.AddRange(question.ToArray());
            questionLength = question.Length;
        }

        public void Record(string owner, ZoneRecord record)
        {
            WriteName(owner);
            WriteUInt16(record.Type);
            WriteUInt16(1); // IN
            WriteUInt32(300);
            var rdata = record.Type switch
            {
                DnsRecordType.Cname => EncodeName(record.Target!),
                DnsRecordType.Mx => [(byte)(record.Preference >> 8), (byte)record.Preference, .. EncodeName(record.Target!)],
                _ => record.Data,
            };
            WriteUInt16((ushort)rdata.Length);
            body.AddRange(rdata);
            answerCount++;
        }

        public void Opt(bool dnssecOk, (int Code, string Text)? extendedError)
        {
            body.Add(0); // root name
            WriteUInt16(DnsRecordType.Opt);
            WriteUInt16(1232); // our UDP payload size
            WriteUInt32(dnssecOk ? 0x8000u : 0u);
            if (extendedError is { } ede)
            {
                var text = Encoding.UTF8.GetBytes(ede.Text);
                WriteUInt16((ushort)(6 + text.Length));
                WriteUInt16(15); // RFC 8914 §2 option code
                WriteUInt16((ushort)(2 + text.Length));
                WriteUInt16((ushort)ede.Code);
                body.AddRange(text);
            }
            else
            {
                WriteUInt16(0);
            }
            additionalCount++;
        }

        public List<byte> Header(int responseCode, bool authentic, bool truncated)
        {
            var header = new byte[12];
            BinaryPrimitives.WriteUInt16BigEndian(header, id);
            var flags = 0x8000 | (queryFlags & 0x7800) | (queryFlags & 0x0100) | 0x0080 | (queryFlags & 0x0010) | responseCode;
            if (authentic)
            {
                flags |= 0x0020;
            }
            if (truncated)
            {
                flags |= 0x0200;
            }
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)flags);
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), (ushort)(questionLength > 0 ? 1 : 0));
            return [.. header];
        }

        public byte[] Finish(int responseCode, bool authentic, int udpLimit)
        {
            var message = Header(responseCode, authentic, truncated: false);
            BinaryPrimitives.WriteUInt16BigEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(message)[6..], (ushort)answerCount);
            BinaryPrimitives.WriteUInt16BigEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(message)[10..], (ushort)additionalCount);
            message.AddRange(body);
            if (message.Count <= udpLimit)
            {
                return [.. message];
            }
            // Too big for UDP: header and question only, TC set; the client asks again over TCP.
            var truncated = Header(responseCode, authentic, truncated: true);
            truncated.AddRange(body.Take(questionLength));
            return [.. truncated];
        }

        public byte[] Malformed()
        {
            // Claims an answer whose RDATA runs past the end of the message.
            var message = Header(0, authentic: false, truncated: false);
            BinaryPrimitives.WriteUInt16BigEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(message)[6..], 1);
            message.AddRange(body.Take(questionLength));
            message.AddRange([0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 1, 44, 0, 200, 1, 2]);
            return [.. message];
        }

        private void WriteName(string name) => body.AddRange(EncodeName(name));

        private static byte[] EncodeName(string name)
        {
            var bytes = new List<byte>();
            foreach (var label in name.Split('.', StringSplitOptions.RemoveEmptyEntries))
            {
                var encoded = Encoding.ASCII.GetBytes(label);
                bytes.Add((byte)encoded.Length);
                bytes.AddRange(encoded);
            }
            bytes.Add(0);
            return [.. bytes];
        }

        private void WriteUInt16(ushort value)
        {
            body.Add((byte)(value >> 8));
            body.Add((byte)value);
        }

        private void WriteUInt32(uint value)
        {
            WriteUInt16((ushort)(value >> 16));
            WriteUInt16((ushort)value);
        }
    }
}
