using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.MtaSts;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Domains;

/// <summary>What the engine reports of a recipient domain after a run: STARTTLS and REQUIRETLS offered, and how TLS was verified.</summary>
public class RecipientDomainTlsEngineTests
{
    private static async Task<DeliveryOutcome> DeliverAsync(LoopbackWorld world, string domain, ManualTimeProvider? time = null)
    {
        using var engine = world.CreateEngine(time: time);
        return await engine.DeliverAsync(Request(domain, Message("s@x", $"r@{domain}"), recipients: $"r@{domain}"), CancellationToken.None);
    }

    [Fact]
    public async Task Starttls_and_requiretls_offered_without_a_policy_are_reported_unverified()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("offers.example", 10, "mx.offers.example");
        await world.AddMxServerAsync("mx.offers.example", o => o.AdvertiseRequireTls = true);
        var time = new ManualTimeProvider(new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero));

        var outcome = await DeliverAsync(world, "offers.example", time);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Equal(new RecipientDomainTls(StartTls: true, RequireTls: true, TlsVerifiedBy.None, time.GetUtcNow()), outcome.DomainTls);
    }

    [Fact]
    public async Task A_server_without_starttls_offers_neither()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("plain.example", 10, "mx.plain.example");
        await world.AddMxServerAsync("mx.plain.example", o => (o.AdvertiseStartTls, o.AdvertiseRequireTls) = (false, true));

        var outcome = await DeliverAsync(world, "plain.example");

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Equal((false, false, TlsVerifiedBy.None), (outcome.DomainTls!.StartTls, outcome.DomainTls.RequireTls, outcome.DomainTls.Verified));
    }

    [Fact]
    public async Task A_refused_starttls_still_counts_as_offered_on_the_plaintext_retry()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("refuses.example", 10, "mx.refuses.example");
        await world.AddMxServerAsync("mx.refuses.example", o => o.StartTlsReply = new SmtpServerReply(454, "4.7.0", "no TLS today"));

        var outcome = await DeliverAsync(world, "refuses.example");

        Assert.Equal(TlsPosture.Plaintext, Assert.Single(outcome.Recipients).Tls);
        Assert.Equal((true, false, TlsVerifiedBy.None), (outcome.DomainTls!.StartTls, outcome.DomainTls.RequireTls, outcome.DomainTls.Verified));
    }

    [Fact]
    public async Task Dane_and_enforced_mta_sts_are_reported_as_the_verification()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("dane.example", 10, "mx.dane.example").MarkSecure("dane.example");
        var certificate = TestPki.SelfSigned("unrelated-name.invalid");
        await world.AddMxServerAsync("mx.dane.example", o => o.Certificate = certificate);
        world.Zone.AddTlsa("_25._tcp.mx.dane.example", 3, 1, 1, TestPki.TlsaData(certificate, 1, 1));
        world.Zone.AddMx("sts.example", 10, "mx.sts.example");
        world.PublishMtaSts("sts.example", "enforce", ["mx.sts.example"]);
        await world.AddMxServerAsync("mx.sts.example");

        Assert.Equal(TlsVerifiedBy.Dane, (await DeliverAsync(world, "dane.example")).DomainTls!.Verified);
        Assert.Equal(TlsVerifiedBy.MtaSts, (await DeliverAsync(world, "sts.example")).DomainTls!.Verified);
    }

    [Fact]
    public async Task Probe_states_what_delivery_would_record_in_the_same_words()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("sts.example", 10, "mx.sts.example");
        world.PublishMtaSts("sts.example", "enforce", ["mx.sts.example"]);
        await world.AddMxServerAsync("mx.sts.example", o => o.AdvertiseRequireTls = true);
        using var engine = world.CreateEngine();

        var probe = await new DestinationProbe(engine).ProbeAsync(CloudDelivery.Addressing.Domain.Parse("sts.example"), CancellationToken.None);
        var delivered = (await DeliverAsync(world, "sts.example")).DomainTls!;

        var seen = Assert.Single(probe.Hosts).DomainTls!;
        Assert.True(seen.SameSupport(delivered));
        Assert.Equal("startTls yes, requireTls yes, verified mta-sts", seen.Describe());
    }

    [Fact]
    public async Task No_session_past_ehlo_reports_nothing()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("closed.example", 10, "mx.closed.example");
        world.Zone.AddA("mx.closed.example", LoopbackWorld.NewAddress().ToString());

        var outcome = await DeliverAsync(world, "closed.example");

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Null(outcome.DomainTls);
    }
}
