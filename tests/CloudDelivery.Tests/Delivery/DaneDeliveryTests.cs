using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

public class DaneDeliveryTests
{
    [Fact]
    public async Task Dane_ee_match_is_delivered_and_verified_by_dane()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("dane.example", 10, "mx.dane.example").MarkSecure("dane.example");
        // A self-signed certificate: DANE-EE pins it, no CA or name involved (RFC 7672 §3.1.1).
        var certificate = TestPki.SelfSigned("unrelated-name.invalid");
        var mx = await world.AddMxServerAsync("mx.dane.example", o => o.Certificate = certificate);
        world.Zone.AddTlsa("_25._tcp.mx.dane.example", 3, 1, 1, TestPki.TlsaData(certificate, 1, 1));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("dane.example", Message("s@x", "r@dane.example"), recipients: "r@dane.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.True(Assert.Single(mx.Messages).Tls);
        Assert.Equal(CertificateVerification.DaneEe, Assert.Single(outcome.Connections).Verification);
        var hostResult = Assert.Single(outcome.HostResults);
        Assert.Equal(TlsRptPolicyType.Tlsa, hostResult.Policy.Type);
        Assert.Equal("mx.dane.example", hostResult.Policy.Domain);
        Assert.Equal(1, hostResult.Summary.TotalSuccessfulSessionCount);
        Assert.Single(hostResult.Policy.Strings);
    }

    [Fact]
    public async Task Dane_mismatch_is_not_delivered_not_retried_in_plaintext_and_reported()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("danebad.example", 10, "mx.danebad.example").MarkSecure("danebad.example");
        var mx = await world.AddMxServerAsync("mx.danebad.example");
        var other = TestPki.SelfSigned("other.invalid");
        world.Zone.AddTlsa("_25._tcp.mx.danebad.example", 3, 1, 1, TestPki.TlsaData(other, 1, 1));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("danebad.example", Message("s@x", "r@danebad.example"), recipients: "r@danebad.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(mx.Messages);
        Assert.DoesNotContain(outcome.Connections, c => c.PlaintextRetry);
        var hostResult = Assert.Single(outcome.HostResults);
        Assert.Equal(TlsRptPolicyType.Tlsa, hostResult.Policy.Type);
        Assert.Contains(hostResult.FailureDetails, d => d.ResultType == TlsRptResultType.ValidationFailure && d.FailureReasonCode.StartsWith("dane-no-match", StringComparison.Ordinal));
        Assert.Equal(1, hostResult.Summary.TotalFailureSessionCount);
    }

    [Fact]
    public async Task Tlsa_records_in_an_insecure_zone_are_ignored()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("insecure.example", 10, "mx.insecure.example");
        var mx = await world.AddMxServerAsync("mx.insecure.example");
        world.Zone.AddTlsa("_25._tcp.mx.insecure.example", 3, 1, 1, new byte[32]);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("insecure.example", Message("s@x", "r@insecure.example"), recipients: "r@insecure.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Equal(TlsRptPolicyType.NoPolicyFound, Assert.Single(outcome.HostResults).Policy.Type);
        Assert.Equal(CertificateVerification.Pkix, Assert.Single(outcome.Connections).Verification);
        Assert.Single(mx.Messages);
    }

    [Fact]
    public async Task Dane_host_without_starttls_is_refused_where_a_plain_host_gets_plaintext()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("danenotls.example", 10, "mx.danenotls.example").MarkSecure("danenotls.example");
        var mx = await world.AddMxServerAsync("mx.danenotls.example", withCertificate: false);
        world.Zone.AddTlsa("_25._tcp.mx.danenotls.example", 3, 1, 1, new byte[32]);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("danenotls.example", Message("s@x", "r@danenotls.example"), recipients: "r@danenotls.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(mx.Messages);
        Assert.Contains(Assert.Single(outcome.HostResults).FailureDetails, d => d.ResultType == TlsRptResultType.StartTlsNotSupported);
    }

    [Theory]
    [InlineData("mx.daneta.example", true)]
    [InlineData("other-name.daneta.example", false)]
    public async Task Dane_ta_pinning_the_issuing_ca_verifies_a_certificate_only_for_the_mx_name(string certificateName, bool delivered)
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("daneta.example", 10, "mx.daneta.example").MarkSecure("daneta.example");
        // As on the web: the server sends leaf and intermediate, the TLSA record pins the intermediate.
        var intermediate = world.Pki.IssueIntermediate();
        var mx = await world.AddMxServerAsync("mx.daneta.example", o =>
        {
            o.Certificate = world.Pki.Issue([certificateName], issuer: intermediate);
            o.CertificateChain = [intermediate];
        });
        world.Zone.AddTlsa("_25._tcp.mx.daneta.example", 2, 1, 1, TestPki.TlsaData(intermediate, 1, 1));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("daneta.example", Message("s@x", "r@daneta.example"), recipients: "r@daneta.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        if (delivered)
        {
            Assert.True(result.Status == RecipientStatus.Delivered, result.Reply.ToString());
            Assert.Equal(CertificateVerification.DaneTa, Assert.Single(outcome.Connections).Verification);
            Assert.Single(mx.Messages);
        }
        else
        {
            Assert.Equal(RecipientStatus.Temporary, result.Status);
            Assert.Empty(mx.Messages);
            Assert.Contains(Assert.Single(outcome.HostResults).FailureDetails, d => d.FailureReasonCode == "dane-no-match+errors");
        }
    }
}

public class DaneLookupFailureTests
{
    [Theory]
    [InlineData(TlsRequirement.Default, RecipientStatus.Temporary)]
    [InlineData(TlsRequirement.TlsRequiredNo, RecipientStatus.Delivered)]
    public async Task Bogus_tlsa_answer_at_a_signed_host_blocks_delivery_and_is_reported_as_dnssec_invalid(TlsRequirement requirement, RecipientStatus expected)
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("tlsafail.example", 10, "mx.tlsafail.example").MarkSecure("tlsafail.example");
        var mx = await world.AddMxServerAsync("mx.tlsafail.example");
        // Answering the TLSA question fails validation: an attacker could be hiding the records (RFC 7672 §2.2).
        world.Zone.MarkBogus("_25._tcp.mx.tlsafail.example", 6);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("tlsafail.example", Message("s@x", "r@tlsafail.example"), requirement, recipients: "r@tlsafail.example"), CancellationToken.None);

        Assert.Equal(expected, Assert.Single(outcome.Recipients).Status);
        Assert.Equal(expected == RecipientStatus.Delivered ? 1 : 0, mx.Messages.Count);
        var hostResult = outcome.HostResults[0];
        Assert.Equal(TlsRptPolicyType.Tlsa, hostResult.Policy.Type);
        Assert.Contains(hostResult.FailureDetails, d => d.ResultType == TlsRptResultType.DnssecInvalid && d.FailureReasonCode == "extended-dns-error-6-DNSSEC-Bogus");
    }
}

public class DestinationEdgeCaseTests
{
    [Fact]
    public async Task Ip_literal_recipient_is_delivered_to_that_address_without_mx_lookup()
    {
        await using var world = await LoopbackWorld.StartAsync();
        var server = await world.AddMxServerAsync("literal.example");
        using var engine = world.CreateEngine();
        var literal = $"[{server.EndPoint.Address}]";

        var outcome = await engine.DeliverAsync(Request(literal, Message("s@x", $"postmaster@{literal}"), recipients: $"postmaster@{literal}"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Delivered, result.Status);
        Assert.Equal(server.EndPoint.Address, result.Address);
        Assert.DoesNotContain(world.Dns.Queries, q => q.Type == "MX");
    }

    [Fact]
    public async Task Cname_loop_is_a_temporary_failure_without_connecting()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddCname("loop1.example", "loop2.example").AddCname("loop2.example", "loop1.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("loop1.example", Message("s@x", "r@loop1.example"), recipients: "r@loop1.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("CNAME loop", result.Reply.Text, StringComparison.Ordinal);
        Assert.Empty(outcome.Connections);
    }
}
