using CloudDelivery.Dane;
using CloudDelivery.Dns;
using CloudDelivery.Loopback.Pki;

namespace CloudDelivery.Tests.Dane;

public class DaneVerifierTests
{
    [Fact]
    public void Only_dane_ta_and_dane_ee_with_known_selectors_and_well_formed_data_are_usable()
    {
        using var certificate = TestPki.SelfSigned("mx.example");
        TlsaRecord[] records =
        [
            new(3, 1, 1, new byte[32]),      // usable
            new(2, 0, 2, new byte[64]),      // usable
            new(3, 0, 0, certificate.RawData), // usable: full certificate
            new(1, 1, 1, new byte[32]),      // PKIX-EE: not for SMTP (RFC 7672 §3.1.3)
            new(0, 0, 1, new byte[32]),      // PKIX-TA
            new(3, 2, 1, new byte[32]),      // unknown selector
            new(3, 1, 3, new byte[32]),      // unknown matching type
            new(3, 1, 1, new byte[31]),      // wrong digest length
            new(3, 0, 0, [1, 2, 3]),         // not a certificate
        ];

        var usable = DaneTlsaRecords.Usable(records);

        Assert.Equal(records.Take(3), usable);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    public void Dane_ee_matches_the_leaf_and_ignores_names_and_expiry(byte selector, byte matchingType)
    {
        using var pki = TestPki.Create();
        using var expiredWrongName = pki.IssueExpired("not-the-mx.example");
        var record = new TlsaRecord(3, selector, matchingType, TestPki.TlsaData(expiredWrongName, selector, matchingType));

        var result = DaneVerifier.Verify([record], expiredWrongName, [expiredWrongName], ["mx.example"], DateTimeOffset.UtcNow);

        Assert.True(result.Verified);
        Assert.Equal(record, result.MatchedRecord);
    }

    [Fact]
    public void Dane_ee_mismatch_is_not_verified()
    {
        using var presented = TestPki.SelfSigned("mx.example");
        using var other = TestPki.SelfSigned("mx.example");

        var result = DaneVerifier.Verify([new TlsaRecord(3, 1, 1, TestPki.TlsaData(other, 1, 1))], presented, [presented], ["mx.example"], DateTimeOffset.UtcNow);

        Assert.False(result.Verified);
        Assert.False(result.HadErrors);
    }

    [Fact]
    public void Dane_ta_checks_the_chain_validity_and_the_names()
    {
        using var pki = TestPki.Create();
        using var intermediate = pki.IssueIntermediate();
        var record = new TlsaRecord(2, 0, 1, TestPki.TlsaData(intermediate, 0, 1));
        using var good = pki.Issue(["mx.example"], issuer: intermediate);
        using var expired = pki.Issue(["mx.example"], DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1), intermediate);
        using var byRoot = pki.Issue(["mx.example"]);

        Assert.True(DaneVerifier.Verify([record], good, [good, intermediate], ["mx.example"], DateTimeOffset.UtcNow).Verified);
        Assert.False(DaneVerifier.Verify([record], good, [good, intermediate], ["other.example"], DateTimeOffset.UtcNow).Verified);
        Assert.False(DaneVerifier.Verify([record], expired, [expired, intermediate], ["mx.example"], DateTimeOffset.UtcNow).Verified);
        // Not issued under the pinned anchor: no presented certificate matches the record.
        Assert.False(DaneVerifier.Verify([record], byRoot, [byRoot], ["mx.example"], DateTimeOffset.UtcNow).Verified);
    }
}
