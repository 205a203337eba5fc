using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CloudDelivery.Loopback.Dns;

/// <summary>A query the server received: the name (lower case, no trailing dot), the type ("MX", "TYPE99"...) and "udp" or "tcp".</summary>
public sealed record DnsQueryLogEntry(string Name, string Type, string Transport);

/// <summary>
/// A DNS server on loopback (UDP and TCP on one port) that answers like a validating recursive resolver
/// from a <see cref="DnsZone"/>.
/// </summary>
/// <remarks>
/// What a resolver the engine trusts would do, and so what this server does:
/// <list type="bullet">
/// <item>follows CNAME chains and returns the aliases followed by the final records (RFC 1034 §4.3.2);</item>
/// <item>answers NXDOMAIN only for names that do not exist at all; a name with other types, or one that
/// exists only as the parent of other names, gets NODATA (RFC 8020);</item>
/// <item>sets the AD bit when every name used in the answer or denial is marked secure, and only for queries
/// that asked for DNSSEC with DO or AD (RFC 6840 §5.7);</item>
/// <item>answers a bogus name with SERVFAIL and an RFC 8914 extended error, as unbound and BIND do;</item>
/// <item>sends a truncated UDP answer (TC=1, RFC 1035 §4.2.1, RFC 6891 §7) when the answer does not fit
/// the client's buffer, so the client asks again over TCP (RFC 7766).</item>
/// </list>
/// The wire format is written and read by hand (RFC 1035 §4.1); responses are never compressed, queries
/// may be. Nothing a client sends stops the server: unparsable queries get FORMERR or no answer, and a
/// fault while answering becomes SERVFAIL.
/// </remarks>
public sealed class LoopbackDnsServer : IAsyncDisposable
{
    private const int HeaderLength = 12;
    private const int MaxCnameChain = 16;
    private const ushort ClassInternet = 1;
    private const ushort ClassAny = 255;
    private const uint AnswerTtl = 300;

    // Our own EDNS buffer size: the DNS Flag Day 2020 value every major resolver uses.
    private const ushort OurUdpPayloadSize = 1232;

    private readonly Socket udp;
    private readonly TcpListener tcp;
    private readonly CancellationTokenSource stopping = new();
    private readonly ConcurrentQueue<DnsQueryLogEntry> queries = new();
    private readonly List<Task> loops = [];
    private int disposed;

    private LoopbackDnsServer(DnsZone zone, Socket udp, TcpListener tcp)
    {
        Zone = zone;
        this.udp = udp;
        this.tcp = tcp;
        EndPoint = (IPEndPoint)udp.LocalEndPoint!;
    }

    /// <summary>The address and port of both the UDP and the TCP listener.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The zone answered from; changes take effect for the next query.</summary>
    public DnsZone Zone { get; }

    /// <summary>Every well-formed query received, in order (a CNAME followed internally is not a query).</summary>
    public IReadOnlyList<DnsQueryLogEntry> Queries => queries.ToArray();

    /// <summary>
    /// Starts listening on <paramref name="address"/> (127.0.0.1 unless given; loopback only) with UDP and
    /// TCP on the same port, an ephemeral one unless <paramref name="port"/> is given.
    /// </summary>
    public static Task<LoopbackDnsServer> StartAsync(DnsZone zone, IPAddress? address = null, int port = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(zone);
        address ??= IPAddress.Loopback;
        if (!IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"{address} is not a loopback address; the test DNS server never listens elsewhere", nameof(address));
        }
        // An ephemeral UDP port may already be taken for TCP; with port 0 try a few others.
        for (var attempt = 0; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var udp = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            TcpListener tcp;
            try
            {
                udp.Bind(new IPEndPoint(address, port));
                tcp = new TcpListener(address, ((IPEndPoint)udp.LocalEndPoint!).Port);
                tcp.Start();
            }
            catch (SocketException) when (port == 0 && attempt < 20)
            {
                udp.Dispose();
                continue;
            }
            catch
            {
                udp.Dispose();
                throw;
            }
            var server = new LoopbackDnsServer(zone, udp, tcp);
            server.loops.Add(Task.Run(server.ServeUdpAsync, CancellationToken.None));
            server.loops.Add(Task.Run(() => AcceptLoop.RunAsync(tcp, server.ServeTcpClientAsync, server.stopping.Token), CancellationToken.None));
            return Task.FromResult(server);
        }
    }

    /// <summary>Stops both listeners and ends open TCP connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }
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
    }

    private async Task ServeUdpAsync()
    {
        // A query larger than this is not a query a stub resolver sends; the kernel cuts it and we FORMERR it.
        var buffer = new byte[4096];
        var anySender = new IPEndPoint(EndPoint.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!stopping.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await udp.ReceiveFromAsync(buffer, SocketFlags.None, anySender, stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // e.g. ICMP port unreachable for an earlier answer to a client that left
            }
            var response = AnswerOrServFail(buffer.AsSpan(0, received.ReceivedBytes), "udp");
            if (response is null)
            {
                continue;
            }
            try
            {
                await udp.SendToAsync(response, SocketFlags.None, received.RemoteEndPoint, stopping.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The client is gone or we are stopping; either way there is no one to tell.
            }
        }
    }

    private async Task ServeTcpClientAsync(Socket socket)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var lengthPrefix = new byte[2];
        // RFC 1035 §4.2.2 / RFC 7766 §8: each message is preceded by its two-byte length, and a client may send
        // several queries on one connection. A peer that breaks off ends in an exception the accept loop absorbs.
        while (!stopping.IsCancellationRequested)
        {
            await stream.ReadExactlyAsync(lengthPrefix, stopping.Token);
            var message = new byte[BinaryPrimitives.ReadUInt16BigEndian(lengthPrefix)];
            await stream.ReadExactlyAsync(message, stopping.Token);
            var response = AnswerOrServFail(message, "tcp");
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

    /// <summary>
    /// The response to one message, or null to stay silent. A fault of our own becomes SERVFAIL, which is what
    /// a resolver reports for an internal error (RFC 1035 §4.1.1), so one odd query never stops the server.
    /// </summary>
    private byte[]? AnswerOrServFail(ReadOnlySpan<byte> message, string transport)
    {
        try
        {
            return Answer(message, transport);
        }
        catch (Exception) when (message.Length >= HeaderLength)
        {
            var id = BinaryPrimitives.ReadUInt16BigEndian(message);
            var flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]);
            return new ResponseBuilder(id, flags).Build(ResponseCode.ServFail, authentic: false, [], null);
        }
    }

    private byte[]? Answer(ReadOnlySpan<byte> message, string transport)
    {
        if (message.Length < HeaderLength)
        {
            return null; // not even a header: there is no ID to answer to
        }
        var id = BinaryPrimitives.ReadUInt16BigEndian(message);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]);
        if ((flags & HeaderFlags.Response) != 0)
        {
            return null; // QR=1 marks a response (RFC 1035 §4.1.1); answering it could make two servers ping-pong forever
        }
        var questionCount = BinaryPrimitives.ReadUInt16BigEndian(message[4..]);
        var answerCount = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
        var authorityCount = BinaryPrimitives.ReadUInt16BigEndian(message[8..]);
        var additionalCount = BinaryPrimitives.ReadUInt16BigEndian(message[10..]);
        var builder = new ResponseBuilder(id, flags);

        // RFC 1035 §4.1.2; in practice (and per RFC 9619) a query holds exactly one question.
        if (questionCount != 1 || !DnsName.TryRead(message, HeaderLength, out var question, out var questionEnd) || questionEnd + 4 > message.Length)
        {
            return builder.Build(ResponseCode.FormErr, authentic: false, [], null);
        }
        var type = BinaryPrimitives.ReadUInt16BigEndian(message[questionEnd..]);
        var klass = BinaryPrimitives.ReadUInt16BigEndian(message[(questionEnd + 2)..]);
        builder.Question(question.Wire, type, klass);
        if (!TryReadEdns(message, questionEnd + 4, answerCount + authorityCount + additionalCount, out var edns))
        {
            return builder.Build(ResponseCode.FormErr, authentic: false, [], null);
        }
        var reply = edns is null ? null : new EdnsReply(edns.DnssecOk, null, null);
        if ((flags & HeaderFlags.Opcode) != 0)
        {
            return builder.Build(ResponseCode.NotImp, authentic: false, [], reply); // only QUERY (opcode 0)
        }
        if (edns is { Version: > 0 })
        {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only; BADVERS is extended RCODE 16.
            return builder.Build(ResponseCode.NoError, authentic: false, [], new EdnsReply(edns.DnssecOk, null, ExtendedResponseCode: 16 >> 4));
        }
        queries.Enqueue(new DnsQueryLogEntry(question.Name, DnsRecordType.Name(type), transport));
        if (klass is not (ClassInternet or ClassAny))
        {
            return builder.Build(ResponseCode.Refused, authentic: false, [], reply);
        }

        if (Zone.TruncationOf(question.Name) is { } truncation)
        {
            if (transport == "udp")
            {
                return builder.Build(ResponseCode.NoError, authentic: false, [], reply, truncated: true);
            }
            if (truncation == DnsTruncation.TcpNeverAnswers)
            {
                return null;
            }
        }
        var resolution = Resolve(question.Name, type);
        switch (resolution.Failure)
        {
            case ZoneFailure.Silent:
                return null;
            case ZoneFailure.Malformed:
                return builder.BuildMalformed(resolution.Corruption);
            case ZoneFailure.ServFail:
                return builder.Build(ResponseCode.ServFail, authentic: false, [], reply);
            case ZoneFailure.Bogus:
                return builder.Build(ResponseCode.ServFail, authentic: false, [], reply is null ? null : reply with { ExtendedError = resolution.ExtendedError });
            default:
                break;
        }
        // AD only for validated data, and only to clients that showed they understand it (RFC 6840 §5.7).
        var authentic = resolution.Secure && (edns is { DnssecOk: true } || (flags & HeaderFlags.AuthenticData) != 0);
        var full = builder.Build(resolution.ResponseCode, authentic, resolution.Answers, reply);
        var limit = transport == "tcp" ? ushort.MaxValue : Math.Max(512, (int?)edns?.UdpPayloadSize ?? 512);
        if (full.Length <= limit)
        {
            return full;
        }
        // Too big: over UDP send header, question and OPT with TC set (RFC 6891 §7) so the client retries over
        // TCP; over TCP (beyond 64 KiB) there is nothing left to try, which a resolver reports as SERVFAIL.
        return transport == "tcp"
            ? builder.Build(ResponseCode.ServFail, authentic: false, [], reply)
            : builder.Build(resolution.ResponseCode, authentic, [], reply, truncated: true);
    }

    /// <summary>Looks the name up, following CNAMEs like a recursive resolver, and collects the answer.</summary>
    private Resolution Resolve(string name, ushort type)
    {
        var answers = new List<(string Owner, ZoneRecord Record)>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var secure = true;
        var current = name;
        while (true)
        {
            var lookup = Zone.Lookup(current);
            if (lookup.Failure != ZoneFailure.None)
            {
                // A failure anywhere on the chain fails the whole answer, as validation of the chain would.
                return new Resolution(ResponseCode.ServFail, [], false, lookup.Failure, lookup.ExtendedError, lookup.Corruption);
            }
            secure &= lookup.Secure;
            visited.Add(current);
            var alias = type is DnsRecordType.Cname or DnsRecordType.Any ? null : lookup.Records.FirstOrDefault(r => r.Type == DnsRecordType.Cname);
            if (alias is null)
            {
                answers.AddRange(lookup.Records.Where(r => r.Type == type || type == DnsRecordType.Any).Select(r => (current, r)));
                // RFC 6604 §2: with CNAMEs the RCODE describes the last name of the chain.
                return new Resolution(lookup.Exists ? ResponseCode.NoError : ResponseCode.NxDomain, answers, secure, ZoneFailure.None, null);
            }
            answers.Add((current, alias));
            current = alias.Target!;
            if (visited.Contains(current) || answers.Count > MaxCnameChain)
            {
                // RFC 1034 §3.6.2: a CNAME loop is an error; a resolver gives up with SERVFAIL.
                return new Resolution(ResponseCode.ServFail, [], false, ZoneFailure.ServFail, null);
            }
        }
    }

    /// <summary>
    /// Finds the OPT pseudo-record (RFC 6891 §6.1) among the records after the question. False when the
    /// records cannot be parsed or there is more than one OPT (a FORMERR, RFC 6891 §6.1.1).
    /// </summary>
    private static bool TryReadEdns(ReadOnlySpan<byte> message, int offset, int recordCount, out EdnsQuery? edns)
    {
        edns = null;
        for (var i = 0; i < recordCount; i++)
        {
            if (!DnsName.TryRead(message, offset, out var owner, out var fixedStart) || fixedStart + 10 > message.Length)
            {
                return false;
            }
            var type = BinaryPrimitives.ReadUInt16BigEndian(message[fixedStart..]);
            var klass = BinaryPrimitives.ReadUInt16BigEndian(message[(fixedStart + 2)..]);
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(message[(fixedStart + 4)..]);
            var dataLength = BinaryPrimitives.ReadUInt16BigEndian(message[(fixedStart + 8)..]);
            offset = fixedStart + 10 + dataLength;
            if (offset > message.Length)
            {
                return false;
            }
            if (type == DnsRecordType.Opt)
            {
                if (edns is not null || owner.Name.Length != 0)
                {
                    return false;
                }
                // RFC 6891 §6.1.3: CLASS is the UDP payload size, TTL holds extended RCODE, VERSION and DO.
                edns = new EdnsQuery(klass, (byte)(ttl >> 16), (ttl & 0x8000) != 0);
            }
        }
        return true;
    }

    private static class HeaderFlags
    {
        public const int Response = 0x8000;
        public const int Opcode = 0x7800;
        public const int Truncated = 0x0200;
        public const int RecursionDesired = 0x0100;
        public const int RecursionAvailable = 0x0080;
        public const int AuthenticData = 0x0020;
        public const int CheckingDisabled = 0x0010;
    }

    /// <summary>RCODE values of RFC 1035 §4.1.1.</summary>
    private static class ResponseCode
    {
        public const int NoError = 0;
        public const int FormErr = 1;
        public const int ServFail = 2;
        public const int NxDomain = 3;
        public const int NotImp = 4;
        public const int Refused = 5;
    }

    private sealed record EdnsQuery(ushort UdpPayloadSize, byte Version, bool DnssecOk);

    private sealed record EdnsReply(bool DnssecOk, (int Code, string Text)? ExtendedError, int? ExtendedResponseCode);

    private sealed record Resolution(int ResponseCode, List<(string Owner, ZoneRecord Record)> Answers, bool Secure, ZoneFailure Failure, (int Code, string Text)? ExtendedError, DnsCorruption Corruption = default);

    /// <summary>Writes responses to one query (RFC 1035 §4.1), uncompressed.</summary>
    private sealed class ResponseBuilder(ushort id, ushort queryFlags)
    {
        private byte[] question = [];

        public void Question(byte[] wireName, ushort type, ushort klass)
        {
            question = [.. wireName, (byte)(type >> 8), (byte)type, (byte)(klass >> 8), (byte)klass];
        }

        public byte[] Build(int responseCode, bool authentic, List<(string Owner, ZoneRecord Record)> answers, EdnsReply? edns, bool truncated = false)
        {
            var writer = new ArrayBufferWriter<byte>(512);
            WriteHeader(writer, responseCode, authentic, truncated, answers.Count, edns is null ? 0 : 1);
            writer.Write(question);
            foreach (var (owner, record) in answers)
            {
                WriteRecord(writer, owner, record);
            }
            if (edns is not null)
            {
                WriteOpt(writer, edns);
            }
            return writer.WrittenSpan.ToArray();
        }

        /// <summary>A response broken as <paramref name="corruption"/> says, to exercise the client's parser.</summary>
        public byte[] BuildMalformed(DnsCorruption corruption)
        {
            var writer = new ArrayBufferWriter<byte>(64);
            WriteHeader(writer, ResponseCode.NoError, authentic: false, truncated: false, answerCount: corruption == DnsCorruption.MissingRecords ? 3 : 1, additionalCount: 0);
            writer.Write(question);
            var ownerOffset = writer.WrittenCount;
            if (corruption == DnsCorruption.CompressionLoop)
            {
                writer.Write<byte>([(byte)(0xC0 | (ownerOffset >> 8)), (byte)ownerOffset]);
            }
            else
            {
                writer.Write<byte>([0xC0, HeaderLength]); // the question's name, correctly compressed
            }
            var type = corruption == DnsCorruption.BadLabel ? DnsRecordType.Mx : DnsRecordType.A;
            WriteUInt16(writer, type);
            WriteUInt16(writer, ClassInternet);
            WriteUInt32(writer, AnswerTtl);
            switch (corruption)
            {
                case DnsCorruption.RdataPastEnd:
                    WriteUInt16(writer, 200);
                    writer.Write<byte>([127, 0]);
                    break;
                case DnsCorruption.BadLabel:
                    WriteUInt16(writer, 6);
                    writer.Write<byte>([0, 10, 64, (byte)'m', (byte)'x', 0]);
                    break;
                default:
                    WriteUInt16(writer, 4);
                    writer.Write<byte>([127, 0, 0, 1]);
                    break;
            }
            return writer.WrittenSpan.ToArray();
        }

        private void WriteHeader(ArrayBufferWriter<byte> writer, int responseCode, bool authentic, bool truncated, int answerCount, int additionalCount)
        {
            // QR set, OPCODE, RD and CD copied from the query (RFC 1035 §4.1.1, RFC 4035 §3.2.2), RA set: we
            // are a recursive resolver. AA stays clear: a resolver is not the authority for what it relays.
            var flags = HeaderFlags.Response | HeaderFlags.RecursionAvailable
                | (queryFlags & (HeaderFlags.Opcode | HeaderFlags.RecursionDesired | HeaderFlags.CheckingDisabled))
                | (authentic ? HeaderFlags.AuthenticData : 0)
                | (truncated ? HeaderFlags.Truncated : 0)
                | (responseCode & 0xF);
            WriteUInt16(writer, id);
            WriteUInt16(writer, (ushort)flags);
            WriteUInt16(writer, (ushort)(question.Length > 0 ? 1 : 0));
            WriteUInt16(writer, checked((ushort)answerCount));
            WriteUInt16(writer, 0); // no SOA with denials: the engine does no negative caching (RFC 2308 §5)
            WriteUInt16(writer, (ushort)additionalCount);
        }

        private static void WriteRecord(ArrayBufferWriter<byte> writer, string owner, ZoneRecord record)
        {
            writer.Write(DnsName.Encode(owner));
            WriteUInt16(writer, record.Type);
            WriteUInt16(writer, ClassInternet);
            WriteUInt32(writer, AnswerTtl);
            // RFC 1035 §3.3.1 and §3.3.9: names inside RDATA; everything else is stored in wire form already.
            byte[] data = record.Type switch
            {
                DnsRecordType.Cname => DnsName.Encode(record.Target!),
                DnsRecordType.Mx => [(byte)(record.Preference >> 8), (byte)record.Preference, .. DnsName.Encode(record.Target!)],
                _ => record.Data,
            };
            WriteUInt16(writer, checked((ushort)data.Length));
            writer.Write(data);
        }

        private static void WriteOpt(ArrayBufferWriter<byte> writer, EdnsReply edns)
        {
            writer.Write<byte>([0]); // root owner name
            WriteUInt16(writer, DnsRecordType.Opt);
            WriteUInt16(writer, OurUdpPayloadSize);
            // RFC 6891 §6.1.3: TTL = extended RCODE (8 bits), VERSION 0, DO echoed (RFC 3225 §3), Z zero.
            WriteUInt32(writer, ((uint)(edns.ExtendedResponseCode ?? 0) << 24) | (edns.DnssecOk ? 0x8000u : 0u));
            if (edns.ExtendedError is not { } error)
            {
                WriteUInt16(writer, 0);
                return;
            }
            // RFC 8914 §2: option code 15, INFO-CODE (16 bits), EXTRA-TEXT in UTF-8 without a terminating NUL.
            var text = Encoding.UTF8.GetBytes(error.Text);
            WriteUInt16(writer, checked((ushort)(4 + 2 + text.Length)));
            WriteUInt16(writer, 15);
            WriteUInt16(writer, (ushort)(2 + text.Length));
            WriteUInt16(writer, (ushort)error.Code);
            writer.Write(text);
        }

        private static void WriteUInt16(ArrayBufferWriter<byte> writer, ushort value)
        {
            BinaryPrimitives.WriteUInt16BigEndian(writer.GetSpan(2), value);
            writer.Advance(2);
        }

        private static void WriteUInt32(ArrayBufferWriter<byte> writer, uint value)
        {
            BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(4), value);
            writer.Advance(4);
        }
    }
}

/// <summary>Domain names on the wire (RFC 1035 §3.1, §4.1.4).</summary>
internal static class DnsName
{
    private const int MaxWireLength = 255;

    /// <summary>A name read from a message: lower-case text for lookups, and its uncompressed wire form as sent (case kept).</summary>
    internal readonly record struct WireName(string Name, byte[] Wire);

    /// <summary>
    /// Reads the possibly compressed name at <paramref name="offset"/>; <paramref name="end"/> is where the
    /// name's bytes in place end. Pointers must point backwards, to an earlier name (RFC 1035 §4.1.4), which
    /// also rules out loops.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> message, int offset, out WireName name, out int end)
    {
        name = default;
        end = -1;
        var wire = new List<byte>();
        var text = new StringBuilder();
        while (true)
        {
            if (offset >= message.Length)
            {
                return false;
            }
            var length = message[offset];
            switch (length & 0xC0)
            {
                case 0xC0:
                    if (offset + 1 >= message.Length)
                    {
                        return false;
                    }
                    var target = ((length & 0x3F) << 8) | message[offset + 1];
                    if (target >= offset)
                    {
                        return false;
                    }
                    if (end < 0)
                    {
                        end = offset + 2;
                    }
                    offset = target;
                    continue;
                case 0x00:
                    break;
                default:
                    return false; // 0x40 and 0x80: extended label types (RFC 6891 §5), not in use
            }
            if (offset + 1 + length > message.Length || wire.Count + 1 + length > MaxWireLength)
            {
                return false;
            }
            wire.AddRange(message.Slice(offset, 1 + length));
            if (length == 0)
            {
                if (end < 0)
                {
                    end = offset + 1;
                }
                name = new WireName(text.ToString().ToLowerInvariant(), [.. wire]);
                return true;
            }
            if (text.Length > 0)
            {
                text.Append('.');
            }
            text.Append(Encoding.Latin1.GetString(message.Slice(offset + 1, length)));
            offset += 1 + length;
        }
    }

    /// <summary>The uncompressed wire form of a validated name ("" is the root).</summary>
    public static byte[] Encode(string name)
    {
        var bytes = new List<byte>(name.Length + 2);
        foreach (var label in name.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(Encoding.ASCII.GetBytes(label));
        }
        bytes.Add(0);
        return [.. bytes];
    }
}
