using System.IO.Compression;
using System.Text;
using System.Text.Json;
using CloudDelivery.TlsRpt;
using MimeKit;

namespace CloudDelivery.Tests.TlsRpt;

public class TlsRptReportTests
{
    private static readonly TlsRptReporter Reporter = new() { OrganizationName = "Sender Org", ContactInfo = "tls@sender.example", SubmitterDomain = "sender.example" };

    /// <summary>A day with successes and several kinds of failure, as the engine reports them.</summary>
    internal static List<TlsRptResult> SampleDay()
    {
        var sts = new TlsRptResult(new TlsRptPolicy
        {
            Type = TlsRptPolicyType.Sts,
            Domain = "example.com",
            Strings = ["version: STSv1", "mode: enforce", "mx: *.mail.example.com", "max_age: 86400"],
            MxHosts = ["*.mail.example.com"],
        });
        sts.Add(10, 0);
        var failing = new TlsRptResult(sts.Policy);
        failing.Add(0, 2, new TlsRptFailureDetails { ResultType = TlsRptResultType.CertificateExpired, ReceivingMxHostname = "mx1.mail.example.com", ReceivingIp = "192.0.2.1" }, new TlsRptFailureDetails { ResultType = TlsRptResultType.CertificateExpired, ReceivingMxHostname = "mx1.mail.example.com", ReceivingIp = "192.0.2.1" });
        var dane = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.Tlsa, Domain = "mx2.mail.example.com", Strings = ["3 1 1 0123456789abcdef"] });
        dane.Add(3, 1, new TlsRptFailureDetails { ResultType = TlsRptResultType.ValidationFailure, ReceivingMxHostname = "mx2.mail.example.com", FailureReasonCode = "dns-extended-error-6-DNSSEC-Bogus" });
        var none = TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, "mx3.mail.example.com", new TlsRptFailureDetails { ResultType = TlsRptResultType.StartTlsNotSupported, ReceivingMxHostname = "mx3.mail.example.com" });
        none.EndSession();
        return [sts, failing, dane, none];
    }

    [Fact]
    public void ReportMatchesTheRfcSchemaWithMergedPoliciesAndFailures()
    {
        var report = TlsRptReport.Create(Reporter, "example.com", new DateOnly(2026, 11, 30), SampleDay());

        var json = report.ToJson();
        Assert.Empty(TlsRptSchema.Errors(json));
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        Assert.Equal("2026-11-30T00:00:00Z", root.GetProperty("date-range").GetProperty("start-datetime").GetString());
        Assert.Equal("2026-11-30T23:59:59Z", root.GetProperty("date-range").GetProperty("end-datetime").GetString());
        Assert.Equal("20261130.example.com@sender.example", root.GetProperty("report-id").GetString());
        var policies = root.GetProperty("policies").EnumerateArray().ToList();
        // The two sts results have the same policy: one entry, counts added, equal details merged.
        Assert.Equal(3, policies.Count);
        var sts = policies[0];
        Assert.Equal(10, sts.GetProperty("summary").GetProperty("total-successful-session-count").GetInt64());
        Assert.Equal(2, sts.GetProperty("summary").GetProperty("total-failure-session-count").GetInt64());
        var detail = Assert.Single(sts.GetProperty("failure-details").EnumerateArray());
        Assert.Equal(2, detail.GetProperty("failed-session-count").GetInt64());
        // Unknown optional fields are left out, not written as "".
        Assert.False(detail.TryGetProperty("sending-mta-ip", out _));
        Assert.False(policies[2].GetProperty("policy").TryGetProperty("policy-string", out _));
    }

    [Fact]
    public void SchemaRejectsAReportWithoutPoliciesOrWithAnUnknownResultType()
    {
        // The schema itself must be able to fail, or the test above proves nothing.
        Assert.NotEmpty(TlsRptSchema.Errors("""{"organization-name":"o","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"},"contact-info":"c","report-id":"r"}"""u8.ToArray()));
        var bad = TlsRptReport.Create(Reporter, "example.com", new DateOnly(2026, 11, 30), [TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, "example.com", new TlsRptFailureDetails { ResultType = "made-up" })]);
        Assert.NotEmpty(TlsRptSchema.Errors(bad.ToJson()));
    }

    [Fact]
    public void FileNameAndGzipFollowSection5()
    {
        var report = TlsRptReport.Create(Reporter, "example.com", new DateOnly(2026, 11, 30), SampleDay());

        // RFC 8460 §5.3: sender!policy-domain!begin!end.json.gz, seconds since the epoch.
        Assert.Equal("sender.example!example.com!1795996800!1796083199.json.gz", report.FileName);
        using var gzip = new GZipStream(new MemoryStream(report.ToGzip()), CompressionMode.Decompress);
        using var plain = new MemoryStream();
        gzip.CopyTo(plain);
        Assert.Equal(report.ToJson(), plain.ToArray());
    }

    [Fact]
    public void ReportMailIsAMultipartReportWithTheRequiredHeaders()
    {
        var report = TlsRptReport.Create(Reporter, "example.com", new DateOnly(2026, 11, 30), SampleDay());

        var bytes = report.ToMessageBytes(Reporter, ["tls@example.com"], new DateTimeOffset(2026, 12, 1, 0, 12, 0, TimeSpan.Zero));
        var message = MimeMessage.Load(new MemoryStream(bytes));

        Assert.Equal("postmaster@sender.example", message.From.Mailboxes.Single().Address);
        Assert.Equal("Report Domain: example.com Submitter: sender.example Report-ID: <20261130.example.com@sender.example>", message.Subject);
        Assert.Equal("example.com", message.Headers["TLS-Report-Domain"]);
        Assert.Equal("sender.example", message.Headers["TLS-Report-Submitter"]);
        Assert.Equal("No", message.Headers["TLS-Required"]);
        var body = Assert.IsType<MultipartReport>(message.Body);
        Assert.Equal("tlsrpt", body.ReportType);
        var attachment = body.OfType<MimePart>().Single(p => p.ContentType.MimeType == "application/tlsrpt+gzip");
        Assert.Equal(report.FileName, attachment.FileName);
        using var decoded = new MemoryStream();
        attachment.Content!.DecodeTo(decoded);
        Assert.Equal(report.ToGzip(), decoded.ToArray());
        Assert.DoesNotContain("\n", Encoding.ASCII.GetString(bytes).Replace("\r\n", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
    }
}
