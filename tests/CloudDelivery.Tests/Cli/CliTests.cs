using System.Text.Json;
using CloudDelivery.Cli;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Cli;

public sealed class CliTests : IAsyncLifetime
{
    private LoopbackWorld world = null!;
    private string caFile = null!;
    private string messageFile = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        messageFile = Path.GetTempFileName();
        // Bare LF line endings on purpose: the tool must send CRLF.
        await File.WriteAllTextAsync(messageFile, "From: <s@sender.example>\nTo: <r@cli.example>\nSubject: cli\n\nbody\n");
        world.Zone.AddMx("cli.example", 10, "mx.cli.example");
        world.PublishMtaSts("cli.example", "enforce", ["mx.cli.example"]);
        await world.AddMxServerAsync("mx.cli.example", o => o.OnRcpt = c => c.Recipient.StartsWith("gone", StringComparison.Ordinal)
            ? new SmtpServerReply(550, "5.1.1", "no such user")
            : c.Recipient.StartsWith("later", StringComparison.Ordinal) ? new SmtpServerReply(451, "4.2.0", "later") : null);
    }

    public async Task DisposeAsync()
    {
        await world.DisposeAsync();
        File.Delete(caFile);
        File.Delete(messageFile);
    }

    private string[] Common => ["--resolver", world.Dns.EndPoint.ToString(), "--trust-ca", caFile, "--allow-private-addresses", "--smtp-port", world.SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--mta-sts-port", world.MtaSts.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--timeout", "5"];

    private static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        var exit = await CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }

    [Fact]
    public async Task Deliver_json_reports_recipients_connections_and_tlsrpt_and_exits_0()
    {
        var (exit, output) = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "r@cli.example", "--message", messageFile, "--json", .. Common]);

        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(output);
        var recipient = json.RootElement.GetProperty("recipients")[0];
        Assert.Equal("delivered", recipient.GetProperty("status").GetString());
        Assert.Equal("mx.cli.example", recipient.GetProperty("host").GetString());
        Assert.Equal(250, recipient.GetProperty("code").GetInt32());
        var connection = json.RootElement.GetProperty("connections")[0];
        Assert.Equal("pkix", connection.GetProperty("certificateVerification").GetString());
        Assert.StartsWith("TLSv1.", connection.GetProperty("tlsVersion").GetString(), StringComparison.Ordinal);
        var policy = json.RootElement.GetProperty("tlsrpt")[0].GetProperty("policy");
        Assert.Equal("sts", policy.GetProperty("policy-type").GetString());
        Assert.Equal("cli.example", policy.GetProperty("policy-domain").GetString());
    }

    [Fact]
    public async Task Deliver_without_a_file_composes_a_test_message_from_subject_header_and_body()
    {
        world.Zone.AddMx("compose.example", 10, "mx.compose.example");
        var mx = await world.AddMxServerAsync("mx.compose.example");

        var (exit, output) = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "r@compose.example", "--subject", "Grüße from the CLI", "--header", "X-Campaign: launch", "--body", "line one\nline two", .. Common]);

        Assert.True(exit == 0, output);
        var received = Assert.Single(mx.Messages);
        var message = MimeKit.MimeMessage.Load(new MemoryStream(received.Data));
        Assert.Equal("Grüße from the CLI", message.Subject);
        Assert.Equal("launch", message.Headers["X-Campaign"]);
        Assert.Equal("s@sender.example", Assert.Single(message.From.Mailboxes).Address);
        Assert.Equal("r@compose.example", Assert.Single(message.To.Mailboxes).Address);
        Assert.False(string.IsNullOrEmpty(message.MessageId));
        Assert.Equal("line one\nline two\n", message.TextBody?.ReplaceLineEndings("\n"));
        // On the wire every line ends in CRLF (RFC 5322 §2.1): no bare LF.
        Assert.All(Enumerable.Range(0, received.Data.Length).Where(i => received.Data[i] == '\n'), i => Assert.Equal((byte)'\r', received.Data[i - 1]));
    }

    [Fact]
    public async Task Deliver_refuses_a_file_together_with_composing_flags_and_a_malformed_header()
    {
        var both = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "r@cli.example", "--message", messageFile, "--subject", "x", .. Common]);
        var malformed = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "r@cli.example", "--header", "no colon here", .. Common]);

        Assert.Equal(CliApplication.ExitUsage, both.Exit);
        Assert.Contains("one or the other", both.Output, StringComparison.Ordinal);
        Assert.Equal(CliApplication.ExitUsage, malformed.Exit);
        Assert.Contains("--header no colon here", malformed.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deliver_exit_code_is_69_for_permanent_only_and_75_when_anything_is_temporary()
    {
        var permanent = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "gone@cli.example", "--to", "r@cli.example", "--message", messageFile, .. Common]);
        var temporary = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "gone@cli.example", "--to", "later@cli.example", "--message", messageFile, .. Common]);

        Assert.Equal(69, permanent.Exit);
        Assert.Contains("gone@cli.example: permanent", permanent.Output, StringComparison.Ordinal);
        Assert.Contains("r@cli.example: delivered", permanent.Output, StringComparison.Ordinal);
        Assert.Equal(75, temporary.Exit);
    }

    [Fact]
    public async Task Deliver_rejects_bad_input_with_a_clear_message()
    {
        var (exit, output) = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "not an address", "--message", messageFile, .. Common]);

        Assert.Equal(64, exit);
        Assert.Contains("--to not an address", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_shows_policy_hosts_capabilities_and_tls_without_sending()
    {
        var (exit, output) = await RunAsync(["probe", "cli.example", "--json", .. Common]);

        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(output);
        Assert.Equal("enforce", json.RootElement.GetProperty("mtaStsMode").GetString());
        var host = json.RootElement.GetProperty("hosts")[0];
        Assert.Equal("mx.cli.example", host.GetProperty("host").GetString());
        Assert.True(host.GetProperty("startTls").GetBoolean());
        Assert.True(host.GetProperty("matchesMtaStsPolicy").GetBoolean());
        Assert.Equal("pkix", host.GetProperty("verification").GetString());
        Assert.Contains("PIPELINING", host.GetProperty("ehloKeywords").EnumerateArray().Select(k => k.GetString()));
    }

    [Fact]
    public async Task Probe_says_first_whether_the_resolver_validates_with_the_default_names_asked_of_the_configured_resolver()
    {
        // The default names, answered by the loopback resolver as a validating one would: nothing leaves 127.0.0.1.
        world.Zone.AddMx("ietf.org", 10, "mail.ietf.org").MarkSecure("ietf.org").MarkServFail("dnssec-failed.org");

        var (exit, output) = await RunAsync(["probe", "cli.example", .. Common]);
        var (_, json) = await RunAsync(["probe", "cli.example", "--json", .. Common]);

        Assert.Equal(0, exit);
        Assert.StartsWith($"resolver {world.Dns.EndPoint}: validating (ietf.org authentic, dnssec-failed.org SERVFAIL){Environment.NewLine}domain cli.example", output, StringComparison.Ordinal);
        var resolver = JsonDocument.Parse(json).RootElement.GetProperty("resolver");
        Assert.Equal("validating", resolver.GetProperty("result").GetString());
        Assert.Equal(world.Dns.EndPoint.ToString(), resolver.GetProperty("resolver").GetString());
        Assert.Equal("ietf.org authentic, dnssec-failed.org SERVFAIL", resolver.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Probe_says_when_the_resolver_does_not_validate()
    {
        world.Zone.AddMx("ietf.org", 10, "mail.ietf.org").AddMx("dnssec-failed.org", 10, "mail.dnssec-failed.org");

        var (exit, output) = await RunAsync(["probe", "cli.example", .. Common]);

        Assert.Equal(0, exit);
        Assert.StartsWith($"resolver {world.Dns.EndPoint}: not-validating (ietf.org answered without AD", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_says_the_mx_lookup_failed_when_dns_answers_servfail()
    {
        world.Zone.MarkServFail("servfail.example");

        var (exit, output) = await RunAsync(["probe", "servfail.example", .. Common]);

        Assert.Equal(75, exit);
        Assert.Contains("MX: lookup failed", output, StringComparison.Ordinal);
        Assert.DoesNotContain("implicit MX", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_names_the_tls_version_and_its_verdict_as_delivery_does()
    {
        var (exit, output) = await RunAsync(["probe", "cli.example", .. Common]);
        var (_, json) = await RunAsync(["deliver", "--from", "s@sender.example", "--to", "r@cli.example", "--message", messageFile, "--json", .. Common]);

        Assert.Equal(0, exit);
        var version = JsonDocument.Parse(json).RootElement.GetProperty("connections")[0].GetProperty("tlsVersion").GetString();
        Assert.StartsWith("TLSv1.", version, StringComparison.Ordinal);
        Assert.Contains($"TLS {version}, certificate", output, StringComparison.Ordinal);
        Assert.Contains("verdict: Verified: WebPKI, as the enforced MTA-STS policy requires", output, StringComparison.Ordinal);
    }
}
