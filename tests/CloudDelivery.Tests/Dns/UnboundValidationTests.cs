using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;
using Xunit.Abstractions;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;
using Fixture = CloudDelivery.Tests.Dns.ValidatingResolverFixture;

namespace CloudDelivery.Tests.Dns;

/// <summary>
/// The repository's unbound policy against real signatures: what validates comes back authentic, what
/// does not is a SERVFAIL the engine treats as temporary, and DANE works end to end through it.
/// </summary>
public sealed class UnboundValidationTests(Fixture world, ITestOutputHelper output) : IClassFixture<Fixture>, IDisposable
{
    [Fact]
    public async Task Signed_records_come_back_authentic()
    {
        var resolver = world.CreateResolver();

        var mx = await resolver.LookupMxAsync(Fixture.SignedDomain, CancellationToken.None);
        var addresses = await resolver.LookupAddressesAsync($"mx.{Fixture.SignedDomain}", CancellationToken.None);
        var tlsa = await resolver.LookupTlsaAsync($"_25._tcp.mx.{Fixture.SignedDomain}", CancellationToken.None);

        Assert.Equal(DnsLookupStatus.Found, mx.Status);
        Assert.True(mx.Authentic, "MX not authentic");
        Assert.Equal($"mx.{Fixture.SignedDomain}", Assert.Single(mx.Records).Exchange);
        // Authentic needs the A answer and the AAAA denial (NODATA proven by NSEC, RFC 4035 §5.4) both validated.
        Assert.True(addresses.Authentic, "addresses not authentic");
        Assert.Equal(world.SignedMx.EndPoint.Address, Assert.Single(addresses.Records));
        Assert.True(tlsa.Authentic, "TLSA not authentic");
        Assert.Equal(world.SignedMxTlsaData, Assert.Single(tlsa.Records).Data);
    }

    [Fact]
    public async Task Nonexistent_name_in_the_signed_zone_is_an_authentic_denial()
    {
        var lookup = await world.CreateResolver().LookupMxAsync($"nothing-here.{Fixture.Zone}", CancellationToken.None);

        Assert.Equal(DnsLookupStatus.NotFound, lookup.Status);
        Assert.True(lookup.NameDoesNotExist);
        Assert.True(lookup.Authentic, "NXDOMAIN not authentic");
    }

    [Fact]
    public async Task Record_changed_after_signing_is_a_failed_lookup_with_the_dnssec_bogus_error()
    {
        var lookup = await world.CreateResolver().LookupMxAsync(Fixture.BogusDomain, CancellationToken.None);

        // val-permissive-mode: no turns a validation failure into SERVFAIL, never into an unsigned answer.
        Assert.Equal(DnsLookupStatus.Failed, lookup.Status);
        Assert.Empty(lookup.Records);
        Assert.False(lookup.Authentic);
        Assert.Equal(6, lookup.ExtendedError?.InfoCode); // RFC 8914 §4.7 DNSSEC Bogus
    }

    [Fact]
    public async Task Record_stripped_of_its_signature_is_bogus_not_insecure()
    {
        var lookup = await world.CreateResolver().LookupTxtAsync(Fixture.StrippedName, CancellationToken.None);

        Assert.Equal(DnsLookupStatus.Failed, lookup.Status);
        Assert.Empty(lookup.Records);
        Assert.Equal(10, lookup.ExtendedError?.InfoCode); // RFC 8914 §4.11 RRSIGs Missing
    }

    [Fact]
    public async Task Dane_delivery_through_unbound_is_delivered_and_verified_by_dane()
    {
        using var engine = world.CreateEngine();
        var recipient = $"r@{Fixture.SignedDomain}";

        var outcome = await engine.DeliverAsync(Request(Fixture.SignedDomain, Message("s@x", recipient), recipients: recipient), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.True(result.Status == RecipientStatus.Delivered, result.Reply.ToString());
        Assert.True(Assert.Single(world.SignedMx.Messages).Tls);
        Assert.Equal(CertificateVerification.DaneEe, Assert.Single(outcome.Connections).Verification);
        var hostResult = Assert.Single(outcome.HostResults);
        Assert.Equal(TlsRptPolicyType.Tlsa, hostResult.Policy.Type);
        Assert.Equal(1, hostResult.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task Mail_to_a_domain_with_a_bogus_mx_is_deferred_without_connecting()
    {
        using var engine = world.CreateEngine();
        var recipient = $"r@{Fixture.BogusDomain}";

        var outcome = await engine.DeliverAsync(Request(Fixture.BogusDomain, Message("s@x", recipient), recipients: recipient), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(outcome.Connections);
        Assert.Empty(world.BogusMx.Messages);
        // Reported for the recipient domain with the resolver's extended error (RFC 8460 §4.3.2.1).
        Assert.Contains(outcome.RecipientDomainResult!.FailureDetails, d => d.FailureReasonCode == "dns-extended-error-6-DNSSEC-Bogus");
    }

    [Fact]
    public async Task Mail_to_a_host_with_a_bogus_tlsa_record_is_deferred_never_sent_and_reported_as_dnssec_invalid()
    {
        using var engine = world.CreateEngine();
        var recipient = $"r@{Fixture.BogusTlsaDomain}";

        var outcome = await engine.DeliverAsync(Request(Fixture.BogusTlsaDomain, Message("s@x", recipient), recipients: recipient), CancellationToken.None);

        // The server has a certificate the engine would trust by PKIX and offers STARTTLS: only the bogus
        // TLSA answer stops delivery, as RFC 7672 §2.2 asks (an attacker could be hiding the records).
        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(world.BogusTlsaMx.Messages);
        Assert.DoesNotContain(outcome.Connections, c => c.PlaintextRetry);
        var hostResult = Assert.Single(outcome.HostResults);
        Assert.Equal(TlsRptPolicyType.Tlsa, hostResult.Policy.Type);
        Assert.Contains(hostResult.FailureDetails, d => d.ResultType == TlsRptResultType.DnssecInvalid && d.FailureReasonCode == "extended-dns-error-6-DNSSEC-Bogus");
    }

    public void Dispose() => output.WriteLine(world.Logs);
}
