using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CloudDelivery.Dns;
using CloudDelivery.Loopback.Dns;

namespace CloudDelivery.Tests.Loopback;

/// <summary>
/// The loopback DNS server, seen through the engine's real resolver, and on the wire where the resolver
/// hides the difference (NXDOMAIN vs NODATA, truncation, the OPT echo), including hostile input.
/// </summary>
public sealed class LoopbackDnsServerTests : IAsyncLifetime
{
    private const ushort TypeA = 1;
    private const ushort TypeMx = 15;
    private const ushort TypeTxt = 16;
    private const ushort TypeTlsa = 52;

    private LoopbackDnsServer server = null!;
    private DnsResolver resolver = null!;

    public async Task InitializeAsync()
    {
        var zone = DnsZone.Parse("""
            # a signed zone with the usual records
            example.test.            MX    10 mx1.example.test.
            example.test.            MX    20 mx2.example.test.   ; second choice
            mx1.example.test.        A     127.0.0.2
            mx1.example.test.        AAAA  ::1
            alias.example.test.      CNAME example.test.
            www.alias.example.test.  CNAME mx1.example.test.
            _mta-sts.example.test.   TXT   "v=STSv1; id=20240101"
            _25._tcp.mx1.example.test. TLSA 3 1 1 0102030405060708090a0b0c0d0e0f10 1112131415161718191a1b1c1d1e1f20
            nullmx.example.test.     MX    0 .
            $secure example.test

            insecure.test.           A     127.0.0.3
            hop.insecure.test.       CNAME example.test.
            to-bogus.example.test.   CNAME bogus.test.
            loop1.test.              CNAME loop2.test.
            loop2.test.              CNAME loop1.test.
            $bogus bogus.test 6
            """);
        zone.AddTxt("long.example.test", new string('x', 300));
        zone.AddTxt("big.example.test", Enumerable.Range(0, 30).Select(i => new string((char)('a' + (i % 26)), 200)).ToArray());
        zone.MarkSilent("silent.test").MarkMalformed("malformed.test").MarkServFail("servfail.test");
        server = await LoopbackDnsServer.StartAsync(zone);
        resolver = new DnsResolver(new DnsResolverOptions { Server = server.EndPoint, QueryTimeout = TimeSpan.FromSeconds(1), Retries = 0 });
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task Mx_and_addresses_of_a_secure_zone_are_authentic()
    {
        var mx = await resolver.LookupMxAsync("example.test", CancellationToken.None);
        var addresses = await resolver.LookupAddressesAsync("MX1.Example.TEST.", CancellationToken.None);

        Assert.True(mx.Authentic);
        Assert.Equal(["mx1.example.test", "mx2.example.test"], mx.Records.OrderBy(r => r.Preference).Select(r => r.Exchange));
        Assert.True(addresses.Authentic);
        Assert.Equal(["127.0.0.2", "::1"], addresses.Records.Select(a => a.ToString()));
    }

    [Fact]
    public async Task Insecure_names_are_not_authentic()
    {
        var lookup = await resolver.LookupAddressesAsync("insecure.test", CancellationToken.None);

        Assert.True(lookup.Found);
        Assert.False(lookup.Authentic);
    }

    [Fact]
    public async Task Cname_chains_are_followed_for_mx_and_addresses_and_a_cname_query_gets_only_the_alias()
    {
        var cname = await resolver.LookupCnameAsync("alias.example.test", CancellationToken.None);
        var mx = await resolver.LookupMxAsync("alias.example.test", CancellationToken.None);
        var addresses = await resolver.LookupAddressesAsync("www.alias.example.test", CancellationToken.None);
        var cnameWire = await ExchangeUdpAsync(Query("alias.example.test", 5, dnssecOk: true));

        Assert.Equal("example.test", Assert.Single(cname.Records));
        Assert.Equal(["mx1.example.test", "mx2.example.test"], mx.Records.Select(r => r.Exchange).Order());
        Assert.True(mx.Authentic);
        Assert.Equal(["127.0.0.2", "::1"], addresses.Records.Select(a => a.ToString()));
        Assert.Equal([(ushort)5], cnameWire.AnswerTypes);
        // The server resolves the chain itself: the resolver never asked about the targets.
        Assert.DoesNotContain(server.Queries, q => q.Name is "example.test" or "mx1.example.test");
    }

    [Fact]
    public async Task A_chain_through_an_insecure_alias_is_not_authentic_and_the_answer_lists_the_alias_first()
    {
        var mx = await resolver.LookupMxAsync("hop.insecure.test", CancellationToken.None);
        var wire = await ExchangeUdpAsync(Query("hop.insecure.test", TypeMx, dnssecOk: true));

        Assert.True(mx.Found);
        Assert.False(mx.Authentic);
        Assert.Equal([(ushort)5, TypeMx, TypeMx], wire.AnswerTypes);
    }

    [Fact]
    public async Task Nxdomain_and_nodata_are_both_not_found_but_differ_on_the_wire()
    {
        var nxdomain = await resolver.LookupMxAsync("nothing.example.test", CancellationToken.None);
        var nodata = await resolver.LookupTxtAsync("mx1.example.test", CancellationToken.None);
        var emptyNonTerminal = await resolver.LookupTlsaAsync("_tcp.mx1.example.test", CancellationToken.None);
        var nullMx = await resolver.LookupMxAsync("nullmx.example.test", CancellationToken.None);

        Assert.True(nxdomain.NotFound);
        Assert.True(nxdomain.Authentic);
        Assert.True(nodata.NotFound);
        Assert.True(emptyNonTerminal.NotFound);
        Assert.Equal(string.Empty, Assert.Single(nullMx.Records).Exchange);
        Assert.Equal(3, (await ExchangeUdpAsync(Query("nothing.example.test", TypeMx))).ResponseCode);
        Assert.Equal(0, (await ExchangeUdpAsync(Query("mx1.example.test", TypeTxt))).ResponseCode);
        Assert.Equal(3, (await ExchangeUdpAsync(Query("with space.test", TypeA))).ResponseCode);
        // RFC 8020: a parent of existing names exists, even with no records of its own.
        Assert.Equal(0, (await ExchangeUdpAsync(Query("_tcp.mx1.example.test", TypeTlsa))).ResponseCode);
        Assert.Equal(0, (await ExchangeUdpAsync(Query("mx1.example.test", 99))).ResponseCode);
    }

    [Fact]
    public async Task Tlsa_and_txt_round_trip_and_large_answers_fall_back_to_tcp()
    {
        var tlsa = await resolver.LookupTlsaAsync("_25._tcp.mx1.example.test", CancellationToken.None);
        var stsTxt = await resolver.LookupTxtAsync("_mta-sts.example.test", CancellationToken.None);
        var longTxt = await resolver.LookupTxtAsync("long.example.test", CancellationToken.None);
        var big = await resolver.LookupTxtAsync("big.example.test", CancellationToken.None);

        var record = Assert.Single(tlsa.Records);
        Assert.Equal("3 1 1 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", record.ToString());
        Assert.True(tlsa.Authentic);
        Assert.Equal("v=STSv1; id=20240101", Assert.Single(stsTxt.Records));
        Assert.Equal(new string('x', 300), Assert.Single(longTxt.Records));
        Assert.Equal(6000, Assert.Single(big.Records).Length);
        Assert.Contains(server.Queries, q => q.Name == "big.example.test" && q.Type == "TXT" && q.Transport == "udp");
        Assert.Contains(server.Queries, q => q.Name == "big.example.test" && q.Type == "TXT" && q.Transport == "tcp");
    }

    [Fact]
    public async Task Udp_answers_beyond_the_client_buffer_are_truncated_and_tcp_answers_fully()
    {
        // 300 bytes of TXT fit the 512 bytes allowed without EDNS; 6000 bytes fit neither 512 nor 1232.
        var plain = await ExchangeUdpAsync(Query("long.example.test", TypeTxt));
        var withoutEdns = await ExchangeUdpAsync(Query("big.example.test", TypeTxt));
        var withEdns = await ExchangeUdpAsync(Query("big.example.test", TypeTxt, ednsSize: 1232, dnssecOk: true));
        var overTcp = await ExchangeTcpAsync(Query("big.example.test", TypeTxt, ednsSize: 1232, dnssecOk: true));

        Assert.False(plain.Truncated);
        Assert.Single(plain.AnswerTypes);
        Assert.True(withoutEdns.Truncated);
        Assert.Empty(withoutEdns.AnswerTypes);
        Assert.Null(withoutEdns.Opt);
        Assert.True(withEdns.Truncated);
        Assert.Empty(withEdns.AnswerTypes);
        Assert.NotNull(withEdns.Opt); // RFC 6891 §7: the OPT stays in a truncated answer
        Assert.False(overTcp.Truncated);
        Assert.Single(overTcp.AnswerTypes);
    }

    [Fact]
    public async Task Ad_bit_only_when_the_query_asks_with_do_or_ad_and_opt_is_echoed()
    {
        var noDnssec = await ExchangeUdpAsync(Query("mx1.example.test", TypeA));
        var withDo = await ExchangeUdpAsync(Query("mx1.example.test", TypeA, ednsSize: 4096, dnssecOk: true));
        var withAdFlag = await ExchangeUdpAsync(Query("mx1.example.test", TypeA, flags: 0x0120));
        var ednsWithoutDo = await ExchangeUdpAsync(Query("mx1.example.test", TypeA, ednsSize: 4096));
        var insecure = await ExchangeUdpAsync(Query("insecure.test", TypeA, ednsSize: 4096, dnssecOk: true));

        Assert.False(noDnssec.Authentic);
        Assert.Null(noDnssec.Opt);
        Assert.True(withDo.Authentic);
        Assert.Equal((ushort)1232, withDo.Opt!.Value.UdpPayloadSize);
        Assert.True(withDo.Opt.Value.DnssecOk);
        Assert.True(withAdFlag.Authentic);
        Assert.False(ednsWithoutDo.Authentic);
        Assert.False(ednsWithoutDo.Opt!.Value.DnssecOk);
        Assert.False(insecure.Authentic);
        // QR and RA set, RD echoed, ID echoed.
        Assert.Equal(0x8180, withDo.Flags & 0xF980);
        Assert.Equal(0x1234, withDo.Id);
    }

    [Fact]
    public async Task Bogus_names_fail_with_the_extended_dns_error_also_at_the_end_of_a_cname()
    {
        server.Zone.MarkBogus("expired.test", 7, "RRSIG expired 2024-01-01");

        var bogus = await resolver.LookupMxAsync("bogus.test", CancellationToken.None);
        var expired = await resolver.LookupTxtAsync("expired.test", CancellationToken.None);
        var viaAlias = await resolver.LookupAddressesAsync("to-bogus.example.test", CancellationToken.None);
        var servFail = await resolver.LookupMxAsync("servfail.test", CancellationToken.None);

        Assert.True(bogus.Failed);
        Assert.Equal(6, bogus.ExtendedError!.InfoCode);
        Assert.True(bogus.ExtendedError.IsAuthenticationFailure);
        Assert.Equal("dns-extended-error-6-DNSSEC-Bogus", bogus.ExtendedError.TlsRptReasonCode);
        Assert.Equal((7, "RRSIG expired 2024-01-01"), (expired.ExtendedError!.InfoCode, expired.ExtendedError.ExtraText));
        Assert.True(viaAlias.Failed);
        Assert.Equal(6, viaAlias.ExtendedError!.InfoCode);
        Assert.True(servFail.Failed);
        Assert.Null(servFail.ExtendedError);
    }

    [Fact]
    public async Task Silent_malformed_and_looping_answers_fail_cleanly_and_the_server_keeps_serving()
    {
        var stopwatch = Stopwatch.StartNew();
        var silent = await resolver.LookupMxAsync("silent.test", CancellationToken.None);
        var silentTook = stopwatch.Elapsed;
        var malformed = await resolver.LookupMxAsync("malformed.test", CancellationToken.None);
        var loop = await resolver.LookupMxAsync("loop1.test", CancellationToken.None);
        var after = await resolver.LookupMxAsync("example.test", CancellationToken.None);

        Assert.True(silent.Failed);
        Assert.True(silentTook >= TimeSpan.FromSeconds(0.9), $"silence should end in the 1 s timeout, took {silentTook}");
        Assert.True(malformed.Failed);
        Assert.True(loop.Failed);
        Assert.True(after.Found);
    }

    [Theory]
    [InlineData(DnsCorruption.RdataPastEnd)]
    [InlineData(DnsCorruption.CompressionLoop)]
    [InlineData(DnsCorruption.MissingRecords)]
    [InlineData(DnsCorruption.BadLabel)]
    public async Task Each_kind_of_corrupt_answer_is_a_failed_lookup_not_an_exception(DnsCorruption corruption)
    {
        server.Zone.MarkMalformed("corrupt.test", corruption);

        var mx = await resolver.LookupMxAsync("corrupt.test", CancellationToken.None);
        var addresses = await resolver.LookupAddressesAsync("corrupt.test", CancellationToken.None);

        Assert.True(mx.Failed, $"{corruption}: {mx.Status}");
        Assert.True(addresses.Failed, $"{corruption}: {addresses.Status}");
        Assert.True((await resolver.LookupMxAsync("example.test", CancellationToken.None)).Found);
    }

    [Fact]
    public async Task Compressed_query_names_are_understood_and_bad_pointers_get_formerr()
    {
        server.Zone.AddA("probe.t", "127.0.0.9");
        // The header doubles as the target of the pointer: ID bytes 0x01 't' and a zero flags byte spell "t".
        byte[] header = [0x01, (byte)'t', 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        byte[] compressed = [.. header, 5, .. "probe"u8, 0xC0, 0x00, 0, 1, 0, 1];
        byte[] selfPointer = [.. header, 0xC0, 12, 0, 1, 0, 1];

        var answer = await ExchangeUdpAsync(compressed);
        var loop = await ExchangeUdpAsync(selfPointer);

        Assert.Equal(0, answer.ResponseCode);
        Assert.Equal([TypeA], answer.AnswerTypes);
        Assert.Equal(1, loop.ResponseCode);
        Assert.Contains(server.Queries, q => q.Name == "probe.t" && q.Type == "A");
    }

    [Fact]
    public async Task Tcp_serves_several_queries_on_one_connection()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.EndPoint);
        var stream = client.GetStream();

        var first = await ExchangeFramedAsync(stream, Query("example.test", TypeMx, id: 1));
        var second = await ExchangeFramedAsync(stream, Query("nothing.test", TypeMx, id: 2));
        var third = await ExchangeFramedAsync(stream, Query("mx1.example.test", TypeA, id: 3));

        Assert.Equal((1, 0, 2), (first.Id, first.ResponseCode, first.AnswerTypes.Count));
        Assert.Equal((2, 3), (second.Id, second.ResponseCode));
        Assert.Equal((3, 0, 1), (third.Id, third.ResponseCode, third.AnswerTypes.Count));
        Assert.Equal(3, server.Queries.Count(q => q.Transport == "tcp"));
    }

    [Fact]
    public async Task Garbage_and_mutated_queries_do_not_stop_the_server()
    {
        var random = new Random(1035);
        var valid = Query("example.test", TypeMx, ednsSize: 1232, dnssecOk: true);
        using (var udp = new UdpClient(AddressFamily.InterNetwork))
        {
            await udp.SendAsync(new byte[] { 1, 2, 3 }, server.EndPoint);
            await udp.SendAsync(Enumerable.Repeat((byte)0xC0, 40).ToArray(), server.EndPoint);
            for (var i = 0; i < 2000; i++)
            {
                var mutated = valid.ToArray();
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
                }
                var datagram = random.Next(4) == 0 ? mutated[..random.Next(mutated.Length)] : mutated;
                await udp.SendAsync(datagram, server.EndPoint);
            }
        }
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(server.EndPoint);
            var garbage = new byte[] { 0, 5, 0xC0, 0xC0, 0xC0, 0xC0, 0xC0 };
            await tcp.GetStream().WriteAsync(garbage);
            var afterGarbage = await ExchangeFramedAsync(tcp.GetStream(), Query("mx1.example.test", TypeA));
            Assert.Single(afterGarbage.AnswerTypes);
        }

        // The server may still be answering the 2000 datagrams (to a closed socket) when the resolver asks, and a
        // busy CI machine can make one lookup time out: what matters is that the server answers again.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        bool found;
        do
        {
            found = (await resolver.LookupMxAsync("example.test", CancellationToken.None)).Found;
        }
        while (!found && DateTime.UtcNow < deadline);
        Assert.True(found);
    }

    [Fact]
    public async Task Zone_changes_apply_while_the_server_runs()
    {
        server.Zone.AddMx("late.test", 5, "mx.late.test");
        var added = await resolver.LookupMxAsync("late.test", CancellationToken.None);
        server.Zone.Remove("late.test", "mx");
        var removed = await resolver.LookupMxAsync("late.test", CancellationToken.None);
        server.Zone.Unmark("servfail.test").AddA("servfail.test", "127.0.0.4");
        var healed = await resolver.LookupAddressesAsync("servfail.test", CancellationToken.None);

        Assert.True(added.Found);
        Assert.True(removed.NotFound);
        Assert.Equal(3, (await ExchangeUdpAsync(Query("late.test", TypeMx))).ResponseCode);
        Assert.Equal("127.0.0.4", Assert.Single(healed.Records).ToString());
    }

    [Fact]
    public async Task Dispose_stops_both_listeners_promptly()
    {
        var endPoint = server.EndPoint;
        using var idle = new TcpClient();
        await idle.ConnectAsync(endPoint);

        var stopwatch = Stopwatch.StartNew();
        await server.DisposeAsync();

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(1), $"dispose took {stopwatch.Elapsed}");
        using var late = new TcpClient();
        await Assert.ThrowsAsync<SocketException>(() => late.ConnectAsync(endPoint));
        Assert.Equal(0, await idle.GetStream().ReadAsync(new byte[1]));
    }

    [Theory]
    [InlineData("a.test A 127.0.0.1\nb.test A not-an-ip\n", "line 2")]
    [InlineData("a.test A 127.0.0.1\n\n# x\nb.test SPF \"v=spf1\"\n", "line 4")]
    [InlineData("a.test MX 10\n", "line 1")]
    [InlineData("a.test A 127.0.0.1\nb.test TXT \"unterminated\n", "line 2")]
    [InlineData("a.test TLSA 3 1 1 abc\n", "line 1")]
    [InlineData("x\ny\n$frobnicate a.test\n", "line 1")]
    [InlineData("a..test A 127.0.0.1\n", "line 1")]
    [InlineData("a.test AAAA 127.0.0.1\n", "line 1")]
    public void Zone_text_errors_name_the_line(string zoneText, string expectedLine) =>
        Assert.Contains(expectedLine + ":", Assert.Throws<FormatException>(() => DnsZone.Parse(zoneText)).Message, StringComparison.Ordinal);

    [Fact]
    public async Task Parsed_zone_answers_as_written()
    {
        await using var parsed = await LoopbackDnsServer.StartAsync(DnsZone.Parse("""
            ; the demo's format, with an optional TTL and class as zone files have them
            Example.COM.   3600 IN MX 10 mx1.example.com.
            mx1.example.com.      A     127.0.0.2
            mx1.example.com.      AAAA  ::1
            alias.example.        CNAME example.com.
            _mta-sts.example.com. TXT   "v=STSv1; id=20240101"
            _25._tcp.mx1.example.com. TLSA 3 1 1 0123abcd
            nullmx.example.       MX    0 .
            quoted.example.com.   TXT   "a \"b\" ; not a comment" "second"   # two strings
            $secure example.com
            $bogus bad.example 9 "no DNSKEY"
            $silent quiet.example
            $malformed broken.example
            """));
        var parsedResolver = new DnsResolver(new DnsResolverOptions { Server = parsed.EndPoint, QueryTimeout = TimeSpan.FromSeconds(1), Retries = 0 });

        var mx = await parsedResolver.LookupMxAsync("example.com", CancellationToken.None);
        var txt = await parsedResolver.LookupTxtAsync("quoted.example.com", CancellationToken.None);
        var bad = await parsedResolver.LookupMxAsync("bad.example", CancellationToken.None);
        var viaAlias = await parsedResolver.LookupMxAsync("alias.example", CancellationToken.None);
        var tlsa = await parsedResolver.LookupTlsaAsync("_25._tcp.mx1.example.com", CancellationToken.None);
        var nullMx = await parsedResolver.LookupMxAsync("nullmx.example", CancellationToken.None);
        var broken = await parsedResolver.LookupMxAsync("broken.example", CancellationToken.None);

        Assert.Equal(new MxRecord(10, "mx1.example.com"), Assert.Single(mx.Records));
        Assert.Equal("a \"b\" ; not a commentsecond", Assert.Single(txt.Records));
        Assert.True(mx.Authentic);
        Assert.Equal((9, "no DNSKEY"), (bad.ExtendedError!.InfoCode, bad.ExtendedError.ExtraText));
        Assert.Equal(new MxRecord(10, "mx1.example.com"), Assert.Single(viaAlias.Records));
        Assert.False(viaAlias.Authentic); // alias.example itself is not under the secure suffix
        Assert.Equal("3 1 1 0123abcd", Assert.Single(tlsa.Records).ToString());
        Assert.Equal(new MxRecord(0, string.Empty), Assert.Single(nullMx.Records));
        Assert.True(broken.Failed);
    }

    [Fact]
    public async Task Only_loopback_addresses_are_accepted() =>
        await Assert.ThrowsAsync<ArgumentException>(() => LoopbackDnsServer.StartAsync(new DnsZone(), IPAddress.Any));

    /// <summary>A query in wire form (RFC 1035 §4.1), optionally with an OPT record (RFC 6891 §6.1.2).</summary>
    private static byte[] Query(string name, ushort type, ushort id = 0x1234, ushort flags = 0x0100, ushort? ednsSize = null, bool dnssecOk = false)
    {
        var message = new List<byte>();
        void UInt16(int value) => message.AddRange([(byte)(value >> 8), (byte)value]);
        UInt16(id);
        UInt16(flags);
        UInt16(1);
        UInt16(0);
        UInt16(0);
        UInt16(ednsSize is null && !dnssecOk ? 0 : 1);
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            message.Add((byte)label.Length);
            message.AddRange(Encoding.ASCII.GetBytes(label));
        }
        message.Add(0);
        UInt16(type);
        UInt16(1);
        if (ednsSize is not null || dnssecOk)
        {
            message.Add(0);
            UInt16(41);
            UInt16(ednsSize ?? 1232);
            UInt16(0);
            UInt16(dnssecOk ? 0x8000 : 0);
            UInt16(0);
        }
        return [.. message];
    }

    private async Task<WireResponse> ExchangeUdpAsync(byte[] query)
    {
        using var udp = new UdpClient(AddressFamily.InterNetwork);
        udp.Connect(server.EndPoint);
        await udp.SendAsync(query);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var received = await udp.ReceiveAsync(timeout.Token);
        return WireResponse.Parse(received.Buffer);
    }

    private async Task<WireResponse> ExchangeTcpAsync(byte[] query)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.EndPoint);
        return await ExchangeFramedAsync(client.GetStream(), query);
    }

    private static async Task<WireResponse> ExchangeFramedAsync(NetworkStream stream, byte[] query)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await stream.WriteAsync((byte[])[(byte)(query.Length >> 8), (byte)query.Length, .. query], timeout.Token);
        var length = new byte[2];
        await stream.ReadExactlyAsync(length, timeout.Token);
        var response = new byte[BinaryPrimitives.ReadUInt16BigEndian(length)];
        await stream.ReadExactlyAsync(response, timeout.Token);
        return WireResponse.Parse(response);
    }

    private readonly record struct OptRecord(ushort UdpPayloadSize, bool DnssecOk);

    /// <summary>Just enough of a response to assert on: header bits, answer types and the OPT record.</summary>
    private sealed record WireResponse(int Id, int Flags, List<ushort> AnswerTypes, OptRecord? Opt)
    {
        public int ResponseCode => Flags & 0xF;

        public bool Authentic => (Flags & 0x0020) != 0;

        public bool Truncated => (Flags & 0x0200) != 0;

        public static WireResponse Parse(byte[] message)
        {
            var counts = Enumerable.Range(0, 4).Select(i => BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(4 + (2 * i)))).ToArray();
            var offset = 12;
            for (var i = 0; i < counts[0]; i++)
            {
                offset = SkipName(message, offset) + 4;
            }
            var answerTypes = new List<ushort>();
            OptRecord? opt = null;
            for (var i = 0; i < counts[1] + counts[2] + counts[3]; i++)
            {
                offset = SkipName(message, offset);
                var type = BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(offset));
                if (i < counts[1])
                {
                    answerTypes.Add(type);
                }
                if (type == 41)
                {
                    opt = new OptRecord(BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(offset + 2)), (BinaryPrimitives.ReadUInt32BigEndian(message.AsSpan(offset + 4)) & 0x8000) != 0);
                }
                offset += 10 + BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(offset + 8));
            }
            Assert.Equal(message.Length, offset);
            return new WireResponse(BinaryPrimitives.ReadUInt16BigEndian(message), BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(2)), answerTypes, opt);
        }

        private static int SkipName(byte[] message, int offset)
        {
            while (message[offset] != 0)
            {
                if ((message[offset] & 0xC0) == 0xC0)
                {
                    return offset + 2;
                }
                offset += 1 + message[offset];
            }
            return offset + 1;
        }
    }
}
