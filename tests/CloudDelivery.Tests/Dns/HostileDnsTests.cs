using System.Diagnostics;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Dns;

/// <summary>
/// DNS servers that truncate, loop or never answer: each delivery ends with the right outcome, within a
/// generous multiple of the configured DNS timeouts (a bound, not a speed), and without a crash.
/// </summary>
public class HostileDnsTests
{
    // LoopbackWorld's engine: 2 s per query, 2 retries, so one lookup is bounded by 6 s; a delivery does a
    // handful of lookups one after another. Ten lookups' worth is a generous bound.
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_truncated_udp_answer_is_asked_again_over_tcp_and_delivered()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("truncated.example", 10, "mx.truncated.example").MarkTruncated("truncated.example");
        var mx = await world.AddMxServerAsync("mx.truncated.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("truncated.example", DeliveryEngineTests.Message("s@x", "r@truncated.example"), recipients: "r@truncated.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Single(mx.Messages);
        Assert.Contains(world.Dns.Queries, q => q.Name.TrimEnd('.') == "truncated.example" && q.Type == "MX" && q.Transport == "tcp");
    }

    [Fact]
    public async Task A_truncated_answer_whose_tcp_retry_is_never_answered_is_a_temporary_failure_within_the_lookup_bound()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("tcpsilent.example", 10, "mx.tcpsilent.example").MarkTruncated("tcpsilent.example", DnsTruncation.TcpNeverAnswers);
        var mx = await world.AddMxServerAsync("mx.tcpsilent.example");
        using var engine = world.CreateEngine();

        var clock = Stopwatch.StartNew();
        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("tcpsilent.example", DeliveryEngineTests.Message("s@x", "r@tcpsilent.example"), recipients: "r@tcpsilent.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.StartsWith("4.", result.Reply.EnhancedCode, StringComparison.Ordinal);
        Assert.Equal(0, mx.ConnectionCount);
        Assert.True(clock.Elapsed < Bound, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task One_lookup_is_bounded_as_a_whole_not_per_try()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.MarkTruncated("hold.example", DnsTruncation.TcpNeverAnswers);
        var options = new DnsResolverOptions { Server = world.Dns.EndPoint, QueryTimeout = TimeSpan.FromSeconds(5), Retries = 3, LookupTimeout = TimeSpan.FromSeconds(1) };
        var resolver = new DnsResolver(options);

        var clock = Stopwatch.StartNew();
        var lookup = await resolver.LookupMxAsync("hold.example", CancellationToken.None);

        Assert.True(lookup.Failed);
        Assert.Contains("timed out", lookup.Error, StringComparison.Ordinal);
        // Per try alone this could take 4 × 5 s (and twice that with the TCP retry); the lookup gets 1 s.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal(TimeSpan.FromSeconds(20), new DnsResolverOptions { QueryTimeout = TimeSpan.FromSeconds(5), Retries = 3 }.EffectiveLookupTimeout);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(DestinationResolver.MaxCnameDepth + 4)]
    public async Task A_cname_loop_or_an_over_long_chain_is_a_temporary_failure(int chainLength)
    {
        await using var world = await LoopbackWorld.StartAsync();
        // loop: a0 → a1 → a0; chain: a0 → a1 → … → a(n-1) → an, with an MX at the end it never reaches.
        for (var i = 0; i < chainLength; i++)
        {
            var target = chainLength == 2 && i == 1 ? "a0.cname.example" : $"a{i + 1}.cname.example";
            world.Zone.AddCname($"a{i}.cname.example", target);
        }
        world.Zone.AddMx($"a{chainLength}.cname.example", 10, "mx.cname.example");
        var mx = await world.AddMxServerAsync("mx.cname.example");
        using var engine = world.CreateEngine();

        var clock = Stopwatch.StartNew();
        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("a0.cname.example", DeliveryEngineTests.Message("s@x", "r@a0.cname.example"), recipients: "r@a0.cname.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("CNAME", result.Reply.Text, StringComparison.Ordinal);
        Assert.Equal(0, mx.ConnectionCount);
        Assert.True(clock.Elapsed < Bound, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_tlsa_query_never_answered_for_a_dnssec_signed_mx_is_a_temporary_failure_with_no_unverified_or_plaintext_delivery()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("tlsasilent.example", 10, "mx.tlsasilent.example").MarkSecure("tlsasilent.example");
        var mx = await world.AddMxServerAsync("mx.tlsasilent.example");
        // RFC 7672 §2.2: a TLSA lookup that fails at a signed host cannot be told from an attack.
        world.Zone.MarkSilent("_25._tcp.mx.tlsasilent.example");
        using var engine = world.CreateEngine();

        var clock = Stopwatch.StartNew();
        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("tlsasilent.example", DeliveryEngineTests.Message("s@x", "r@tlsasilent.example"), recipients: "r@tlsasilent.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal(0, mx.ConnectionCount);
        Assert.Empty(mx.Messages);
        Assert.True(clock.Elapsed < Bound, $"took {clock.Elapsed}");
    }
}
