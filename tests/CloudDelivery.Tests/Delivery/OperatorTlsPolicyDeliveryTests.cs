using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.Tls;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

/// <summary>The operator's TLS policy end to end: real sockets, real STARTTLS with the test CA, loopback DNS.</summary>
public class OperatorTlsPolicyDeliveryTests
{
    private static OperatorTlsPolicies Policies(string entries) => OperatorTlsPolicies.ParseInline(entries, "test").Policies!;

    private static async Task<DeliveryOutcome> DeliverAsync(LoopbackWorld world, string domain, string policies)
    {
        using var engine = world.CreateEngine(tlsPolicies: Policies(policies));
        return await engine.DeliverAsync(Request(domain, Message("sender@sender.loopback.test", $"r@{domain}"), recipients: $"r@{domain}"), CancellationToken.None);
    }

    [Fact]
    public async Task Encrypt_to_a_server_without_starttls_is_a_temporary_failure_naming_the_policy_and_nothing_goes_in_plaintext()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("partner.example", 10, "mx.partner.example");
        var mails = 0;
        var mx = await world.AddMxServerAsync("mx.partner.example", o =>
        {
            o.AdvertiseStartTls = false;
            o.OnMail = _ => { Interlocked.Increment(ref mails); return null; };
        });

        var outcome = await DeliverAsync(world, "partner.example", "partner.example encrypt");

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal(new SmtpReply(451, "4.7.10", "TLS required by this service's policy for partner.example (encrypt): mx.partner.example did not offer STARTTLS"), result.Reply);
        Assert.Equal(LocalFailure.Tls, result.LocalFailure);
        Assert.Equal(BounceCategory.TlsPolicy, BounceClassification.Of(result));
        // No plaintext retry: not even MAIL FROM went over the unencrypted connection.
        Assert.Equal(0, mails);
        Assert.Empty(mx.Messages);
        Assert.DoesNotContain(outcome.Connections, c => c.PlaintextRetry);
    }

    [Fact]
    public async Task Verify_with_a_certificate_for_another_name_fails_naming_the_expected_name()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("shop.example", 10, "mx.shop.example");
        var mx = await world.AddMxServerAsync("mx.shop.example", o => o.Certificate = world.Pki.Issue(["other.example"]));

        var outcome = await DeliverAsync(world, "shop.example", "shop.example verify");

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.StartsWith("TLS required by this service's policy for shop.example (verify): the certificate of mx.shop.example is not valid for mx.shop.example: ", result.Reply.Text, StringComparison.Ordinal);
        Assert.Contains("other.example", result.Reply.Text, StringComparison.Ordinal);
        Assert.Equal("4.7.10", result.Reply.EnhancedCode);
        Assert.Empty(mx.Messages);
        Assert.DoesNotContain(outcome.Connections, c => c.PlaintextRetry);
    }

    [Fact]
    public async Task Verify_with_a_good_certificate_is_delivered_verified_by_webpki()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("shop.example", 10, "mx.shop.example");
        var mx = await world.AddMxServerAsync("mx.shop.example");

        var outcome = await DeliverAsync(world, "shop.example", "shop.example verify");

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.True(Assert.Single(mx.Messages).Tls);
        Assert.Equal(CertificateVerification.Pkix, Assert.Single(outcome.Connections).Verification);
    }

    [Fact]
    public async Task Verify_with_match_names_accepts_a_certificate_for_a_name_under_the_suffix()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("hosted.example", 10, "mx.hosted.example");
        var mx = await world.AddMxServerAsync("mx.hosted.example", o => o.Certificate = world.Pki.Issue(["smtp.provider.example"]));

        var outcome = await DeliverAsync(world, "hosted.example", "mx:mx.hosted.example verify match=.provider.example");

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.True(Assert.Single(mx.Messages).Tls);
        Assert.Equal(CertificateVerification.Pkix, Assert.Single(outcome.Connections).Verification);
    }

    [Fact]
    public async Task None_to_a_server_whose_tls_is_broken_delivers_in_plaintext_without_trying_tls()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("broken.example", 10, "mx.broken.example");
        var mx = await world.AddMxServerAsync("mx.broken.example", o => o.Hostility = SmtpHostility.GarbageAfterStartTls);

        var outcome = await DeliverAsync(world, "broken.example", "broken.example none");

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.False(Assert.Single(mx.Messages).Tls);
        // One connection, no failed TLS attempt before it and no plaintext retry after one.
        var connection = Assert.Single(outcome.Connections);
        Assert.False(connection.PlaintextRetry);
        Assert.Null(connection.TlsVersion);
    }

    [Fact]
    public async Task None_where_dane_applies_still_uses_dane()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("dane.example", 10, "mx.dane.example").MarkSecure("dane.example");
        var certificate = TestPki.SelfSigned("unrelated-name.invalid");
        var mx = await world.AddMxServerAsync("mx.dane.example", o => o.Certificate = certificate);
        world.Zone.AddTlsa("_25._tcp.mx.dane.example", 3, 1, 1, TestPki.TlsaData(certificate, 1, 1));

        var outcome = await DeliverAsync(world, "dane.example", "dane.example none");

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.True(Assert.Single(mx.Messages).Tls);
        Assert.Equal(CertificateVerification.DaneEe, Assert.Single(outcome.Connections).Verification);
    }

    [Fact]
    public async Task Dane_only_does_not_use_a_host_without_tlsa_records()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("payroll.example", 10, "mx.payroll.example");
        var mx = await world.AddMxServerAsync("mx.payroll.example");

        var outcome = await DeliverAsync(world, "payroll.example", "payroll.example dane-only");

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal("TLS required by this service's policy for payroll.example (dane-only): mx.payroll.example has no usable DANE TLSA records", result.Reply.Text);
        Assert.Empty(outcome.Connections);
        Assert.Empty(mx.Messages);
    }

    [Fact]
    public async Task A_sender_domain_policy_applies_to_that_senders_message_and_not_to_anothers_in_the_same_run()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("plain.example", 10, "mx.plain.example");
        var mx = await world.AddMxServerAsync("mx.plain.example", o => o.AdvertiseStartTls = false);
        using var engine = world.CreateEngine(tlsPolicies: Policies("sender:bank.example encrypt"));
        var request = new DeliveryRequest
        {
            Destination = NextHop.Parse("plain.example"),
            Attempt = 1,
            Messages = [Outbound("bank", "alerts@bank.example", "a@plain.example"), Outbound("shop", "news@shop.example", "b@plain.example")],
        };

        var outcome = await engine.DeliverAsync(request, CancellationToken.None);

        var bank = outcome.Recipients.Single(r => r.MessageId == "bank");
        var shop = outcome.Recipients.Single(r => r.MessageId == "shop");
        Assert.Equal(RecipientStatus.Temporary, bank.Status);
        Assert.Equal("TLS required by this service's policy for mail from bank.example (encrypt): mx.plain.example did not offer STARTTLS", bank.Reply.Text);
        Assert.Equal(RecipientStatus.Delivered, shop.Status);
        Assert.Equal(["news@shop.example"], mx.Messages.Select(m => m.MailFrom));
    }

    [Fact]
    public async Task Probe_shows_which_operator_entry_applied_to_each_host_and_what_it_did()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("partner.example", 10, "mx1.partner.example");
        world.Zone.AddMx("partner.example", 20, "mx2.hoster.example");
        await world.AddMxServerAsync("mx1.partner.example", o => o.AdvertiseStartTls = false);
        await world.AddMxServerAsync("mx2.hoster.example");
        using var engine = world.CreateEngine(tlsPolicies: Policies("partner.example encrypt; mx:.hoster.example verify"));

        var probe = await new DestinationProbe(engine).ProbeAsync(Domain.Parse("partner.example"), CancellationToken.None);

        var first = probe.Hosts.Single(h => h.Host == "mx1.partner.example");
        var second = probe.Hosts.Single(h => h.Host == "mx2.hoster.example");
        Assert.Equal("partner.example encrypt (entry 1 of test): STARTTLS required, any certificate", first.OperatorPolicy);
        // Without STARTTLS the host is refused, as delivery would refuse it.
        Assert.Equal(TlsVerdict.Refused, first.Verdict);
        // The stricter MX host entry wins over the recipient domain's for the hoster's MX.
        Assert.Equal("mx:.hoster.example verify (entry 2 of test): WebPKI required for mx2.hoster.example", second.OperatorPolicy);
        Assert.Equal(TlsVerdict.Verified, second.Verdict);
    }

    private static OutboundMessage Outbound(string id, string sender, string recipient)
    {
        var bytes = Message(sender, recipient);
        return new OutboundMessage
        {
            Id = id,
            Sender = EmailAddress.Parse(sender),
            Recipients = [EmailAddress.Parse(recipient)],
            Body = MessageBody.FromBytes(bytes),
        };
    }
}
