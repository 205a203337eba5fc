using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Tls;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.Tls;

public class PkixVerifierTests
{
    [Fact]
    public void Failures_map_to_rfc_8460_result_types()
    {
        using var pki = TestPki.Create();
        var roots = new X509Certificate2Collection(pki.Root);
        var now = DateTimeOffset.UtcNow;
        using var good = pki.Issue(["mx.example", "*.wild.example"]);
        using var expired = pki.IssueExpired("mx.example");
        using var selfSigned = TestPki.SelfSigned("mx.example");

        Assert.True(PkixVerifier.Verify(good, [good], "mx.example", roots, now).Valid);
        Assert.True(PkixVerifier.Verify(good, [good], "a.wild.example", roots, now).Valid);
        Assert.Equal(TlsRptResultType.CertificateHostMismatch, PkixVerifier.Verify(good, [good], "a.b.wild.example", roots, now).TlsRptResultType);
        Assert.Equal(TlsRptResultType.CertificateHostMismatch, PkixVerifier.Verify(good, [good], "other.example", roots, now).TlsRptResultType);
        Assert.Equal(TlsRptResultType.CertificateExpired, PkixVerifier.Verify(expired, [expired], "mx.example", roots, now).TlsRptResultType);
        Assert.Equal(TlsRptResultType.CertificateNotTrusted, PkixVerifier.Verify(selfSigned, [selfSigned], "mx.example", roots, now).TlsRptResultType);
        // Without the extra root the test CA is unknown.
        Assert.Equal(TlsRptResultType.CertificateNotTrusted, PkixVerifier.Verify(good, [good], "mx.example", null, now).TlsRptResultType);
        // Validity is judged at the engine's clock, not the machine's.
        Assert.Equal(TlsRptResultType.CertificateExpired, PkixVerifier.Verify(good, [good], "mx.example", roots, now.AddDays(60)).TlsRptResultType);
    }
}
