using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Cli;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.TlsRpt;

/// <summary><c>tlsrpt show</c> and <c>tlsrpt send --dry-run</c> against Azurite and a loopback DNS server, as an operator runs them.</summary>
[Collection(AzuriteCollection.Name)]
public class TlsRptCliTests(AzuriteFixture azurite)
{
    private static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        var exit = await CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }

    [Fact]
    public async Task Show_prints_the_days_counts_and_a_dry_run_prints_the_report_without_sending()
    {
        var storage = await azurite.NewStorageAsync();
        var store = new TlsRptResultStore(storage.TlsReports);
        var results = TlsRptReportTests.SampleDay();
        await store.RecordAsync("example.com", results[0], [results[2]], CancellationToken.None);
        await store.RecordAsync("example.com", results[1], [], CancellationToken.None);
        await using var dns = await LoopbackDnsServer.StartAsync(new DnsZone().AddTxt("_smtp._tls.example.com", "v=TLSRPTv1; rua=mailto:tls@example.com"));
        var today = DateOnly.FromDateTime(DateTime.UtcNow).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        string[] common = ["--storage", azurite.ConnectionString, "--set", $"CloudDelivery:Storage:TlsReportsTable={storage.Options.TlsReportsTable}", "--set", $"CloudDelivery:Delivery:Resolver={dns.EndPoint}", "--set", "CloudDelivery:Hostname=mta.sender.example"];

        var show = await RunAsync(["tlsrpt", "show", "--date", today, .. common]);
        Assert.Equal(0, show.Exit);
        Assert.Contains("sts example.com: 10 successful, 2 failed sessions", show.Output, StringComparison.Ordinal);
        Assert.Contains("2 × certificate-expired at mx1.mail.example.com", show.Output, StringComparison.Ordinal);

        var dry = await RunAsync(["tlsrpt", "send", "--date", today, "--dry-run", .. common]);
        Assert.Equal(0, dry.Exit);
        Assert.Contains($"report {today.Replace("-", string.Empty, StringComparison.Ordinal)}.example.com@sender.example", dry.Output, StringComparison.Ordinal);
        Assert.Contains("mailto:tls@example.com: dry run: not sent", dry.Output, StringComparison.Ordinal);
        Assert.Contains("\"total-failure-session-count\": 2", dry.Output, StringComparison.Ordinal);
        // Nothing was marked sent and nothing submitted.
        Assert.Empty(await store.MarksAsync(DateOnly.FromDateTime(DateTime.UtcNow), CancellationToken.None));
        Assert.Empty((await storage.WakeUps.PeekMessagesAsync()).Value);

        var badDate = await RunAsync(["tlsrpt", "show", "--date", "yesterday", .. common]);
        Assert.Equal(CliApplication.ExitUsage, badDate.Exit);
    }
}
