using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.TlsRpt;

public class TlsRptRecordTests
{
    [Fact]
    public void ParsesMailtoAndHttpsDestinations()
    {
        var record = TlsRptRecord.Parse("v=TLSRPTv1; rua=mailto:tls-reports@example.com , https://reports.example.com/v1/tlsrpt; x-ext=value;");

        Assert.Equal(["tls-reports@example.com"], record.MailtoAddresses);
        Assert.Equal([new Uri("https://reports.example.com/v1/tlsrpt")], record.HttpsUris);
    }

    [Theory]
    [InlineData("v=TLSRPTv2; rua=mailto:a@example.com", "must start")]
    [InlineData("v=TLSRPTv1", "no rua")]
    [InlineData("v=TLSRPTv1; rua=ftp://example.com/r", "not a mailto: or https:")]
    [InlineData("v=TLSRPTv1; rua=mailto:nobody", "no address")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "more than one rua")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; bad ext=1", "malformed extension")]
    public void RefusesMalformedRecords(string text, string expected)
    {
        var error = Assert.Throws<TlsRptRecordException>(() => TlsRptRecord.Parse(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OtherTxtRecordsAreIgnoredAndTwoRecordsMeanNone()
    {
        // RFC 8460 §3: records not starting with v=TLSRPTv1 are discarded; not exactly one left means none.
        Assert.NotNull(TlsRptRecord.Select(["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com"]));
        Assert.Null(TlsRptRecord.Select(["v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"]));
        Assert.Null(TlsRptRecord.Select(["v=TLSRPTv10; rua=mailto:a@example.com"]));
    }
}
