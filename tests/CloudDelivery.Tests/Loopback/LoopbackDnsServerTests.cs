using CloudDelivery.Dns;
using CloudDelivery.Loopback.Dns;

namespace CloudDelivery.Tests.Loopback;

/// <summary>The loopback DNS server, seen through the engine's real resolver, including hostile answers.</summary>
public sealed class LoopbackDnsServerTests : IAsyncLifetime
{
    private LoopbackDnsServer server = null!;
    private DnsResolver resolver = null!;

    public async Task InitializeAsync()
    {
        var zone = DnsZone.Parse("""
            # a signed zone with the usual records
            example.test.            MX    10 mx1.example.test.
            example.test.            MX    20 mx2.example.test.
            mx1.example.test.        A     127.0.0.2
            mx1.example.test.        AAAA  ::1
            alias.example.test.      CNAME example.test.
            _25._tcp.mx1.example.test. TLSA 3 1 1 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
            nullmx.example.test.     MX    0 .
            $secure example.test
            insecure.test.           A     127.0.0.3
            $bogus bogus.test 6
            """);
        zone.AddTxt("long.example.test", new string('x', 300));
        zone.AddTxt("big.example.test", Enumerable.Range(0, 30).Select(i => new string((char)('a' + (i % 26)), 200)).ToArray());
        zone.MarkSilent("silent.test").MarkMalformed("malformed.test");
        server = await LoopbackDnsServer.StartAsync(zone);
        resolver = new DnsResolver(new DnsResolverOptions { Server = server.EndPoint, QueryTimeout = TimeSpan.FromSeconds(2), Retries = 0 });
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task Mx_and_addresses_of_a_secure_zone_are_authentic()
    {
        var mx = await resolver.LookupMxAsync("example.test", CancellationToken.None);
        var addresses = await resolver.LookupAddressesAsync("mx1.example.test", CancellationToken.None);

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
    public async Task Cname_is_reported_and_followed_for_other_types()
    {
        var cname = await resolver.LookupCnameAsync("alias.example.test", CancellationToken.None);
        var mx = await resolver.LookupMxAsync("alias.example.test", CancellationToken.None);

        Assert.Equal("example.test", Assert.Single(cname.Records));
        Assert.Equal(2, mx.Records.Count);
    }

    [Fact]
    public async Task Nxdomain_and_nodata_are_both_not_found_and_null_mx_is_an_empty_exchange()
    {
        var nxdomain = await resolver.LookupMxAsync("nothing.example.test", CancellationToken.None);
        var nodata = await resolver.LookupTxtAsync("mx1.example.test", CancellationToken.None);
        var nullMx = await resolver.LookupMxAsync("nullmx.example.test", CancellationToken.None);

        Assert.True(nxdomain.NotFound);
        Assert.True(nxdomain.Authentic);
        Assert.True(nodata.NotFound);
        Assert.Equal(string.Empty, Assert.Single(nullMx.Records).Exchange);
    }

    [Fact]
    public async Task Tlsa_and_long_txt_round_trip_and_large_answers_fall_back_to_tcp()
    {
        var tlsa = await resolver.LookupTlsaAsync("_25._tcp.mx1.example.test", CancellationToken.None);
        var longTxt = await resolver.LookupTxtAsync("long.example.test", CancellationToken.None);
        var big = await resolver.LookupTxtAsync("big.example.test", CancellationToken.None);

        var record = Assert.Single(tlsa.Records);
        Assert.Equal((3, 1, 1, 32), (record.Usage, record.Selector, record.MatchingType, record.Data.Length));
        Assert.Equal(new string('x', 300), Assert.Single(longTxt.Records));
        Assert.Equal(6000, Assert.Single(big.Records).Length);
        Assert.Contains(server.Queries, q => q.Name == "big.example.test" && q.Transport == "tcp");
    }

    [Fact]
    public async Task Bogus_name_fails_with_the_extended_dns_error()
    {
        var lookup = await resolver.LookupMxAsync("bogus.test", CancellationToken.None);

        Assert.True(lookup.Failed);
        Assert.Equal(6, lookup.ExtendedError!.InfoCode);
        Assert.True(lookup.ExtendedError.IsAuthenticationFailure);
        Assert.Equal("dns-extended-error-6-DNSSEC-Bogus", lookup.ExtendedError.TlsRptReasonCode);
    }

    [Fact]
    public async Task Silent_and_malformed_answers_fail_cleanly_and_the_server_keeps_serving()
    {
        var silent = await resolver.LookupMxAsync("silent.test", CancellationToken.None);
        var malformed = await resolver.LookupMxAsync("malformed.test", CancellationToken.None);
        var after = await resolver.LookupMxAsync("example.test", CancellationToken.None);

        Assert.True(silent.Failed);
        Assert.True(malformed.Failed);
        Assert.True(after.Found);
    }

    [Fact]
    public async Task Garbage_datagrams_do_not_stop_the_server()
    {
        using (var udp = new System.Net.Sockets.UdpClient())
        {
            await udp.SendAsync(new byte[] { 1, 2, 3 }, server.EndPoint);
            await udp.SendAsync(Enumerable.Repeat((byte)0xC0, 40).ToArray(), server.EndPoint);
        }
        Assert.True((await resolver.LookupMxAsync("example.test", CancellationToken.None)).Found);
    }

    [Fact]
    public void Zone_text_errors_name_the_line() =>
        Assert.Contains("line 2", Assert.Throws<FormatException>(() => DnsZone.Parse("a.test A 127.0.0.1\nb.test A not-an-ip\n")).Message, StringComparison.Ordinal);
}
