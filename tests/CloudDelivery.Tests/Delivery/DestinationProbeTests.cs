using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Smtp;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

/// <summary>The probe judges hosts with delivery's TLS-policy decision, over loopback.</summary>
public class DestinationProbeTests
{
    [Fact]
    public async Task A_host_whose_authentic_tlsa_records_do_not_match_fails_dane_verification_as_delivery_refuses_it()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("danebad.example", 10, "mx.danebad.example").MarkSecure("danebad.example");
        // The server's certificate is WebPKI-valid for its name; the pinned key is another one.
        await world.AddMxServerAsync("mx.danebad.example");
        world.Zone.AddTlsa("_25._tcp.mx.danebad.example", 3, 1, 1, TestPki.TlsaData(TestPki.SelfSigned("other.invalid"), 1, 1));
        using var engine = world.CreateEngine();

        var probe = await new DestinationProbe(engine).ProbeAsync(Domain.Parse("danebad.example"), CancellationToken.None);
        var delivery = await engine.DeliverAsync(Request("danebad.example", Message("s@x", "r@danebad.example"), recipients: "r@danebad.example"), CancellationToken.None);

        var host = Assert.Single(probe.Hosts);
        Assert.True(host.StartTls);
        Assert.Equal(TlsVerdict.Failed, host.Verdict);
        Assert.Contains("DANE", host.VerdictDetail, StringComparison.Ordinal);
        // WebPKI would pass, but with usable TLSA records delivery only counts DANE (RFC 7672 §3.1).
        Assert.Equal(CertificateVerification.Unverified, host.Verification);
        Assert.Equal(RecipientStatus.Temporary, Assert.Single(delivery.Recipients).Status);
    }

    [Fact]
    public async Task A_host_whose_tlsa_record_matches_is_verified_by_dane()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("dane.example", 10, "mx.dane.example").MarkSecure("dane.example");
        var certificate = TestPki.SelfSigned("unrelated-name.invalid");
        await world.AddMxServerAsync("mx.dane.example", o => o.Certificate = certificate);
        world.Zone.AddTlsa("_25._tcp.mx.dane.example", 3, 1, 1, TestPki.TlsaData(certificate, 1, 1));
        using var engine = world.CreateEngine();

        var probe = await new DestinationProbe(engine).ProbeAsync(Domain.Parse("dane.example"), CancellationToken.None);

        var host = Assert.Single(probe.Hosts);
        Assert.Equal(TlsVerdict.Verified, host.Verdict);
        Assert.Equal(CertificateVerification.DaneEe, host.Verification);
        Assert.Matches("^TLSv1\\.[23]$", host.TlsVersion);
    }

    [Fact]
    public async Task A_servfail_for_the_mx_lookup_is_a_failed_lookup_not_an_implicit_mx()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.MarkServFail("broken.example");
        using var engine = world.CreateEngine();

        var probe = await new DestinationProbe(engine).ProbeAsync(Domain.Parse("broken.example"), CancellationToken.None);

        Assert.True(probe.MxLookupFailed);
        Assert.NotNull(probe.DestinationError);
        Assert.Empty(probe.Hosts);
    }
}
