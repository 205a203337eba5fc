using System.Net;
using System.Text;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.Delivery;

public class DeliveryEngineTests
{
    internal static byte[] Message(string from, string to, string body = "Hello from the loopback.") => Encoding.UTF8.GetBytes(
        $"From: <{from}>\r\nTo: <{to}>\r\nSubject: test\r\nMessage-ID: <{Guid.NewGuid():N}@sender.loopback.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n");

    internal static DeliveryRequest Request(string domain, byte[] message, TlsRequirement requirement = TlsRequirement.Default, int attempt = 1, params string[] recipients)
    {
        var properties = MessageInspection.Inspect(message);
        return new DeliveryRequest
        {
            Destination = NextHop.Parse(domain),
            Attempt = attempt,
            Messages =
            [
                new OutboundMessage
                {
                    Id = "m1",
                    Sender = EmailAddress.Parse("sender@sender.loopback.test"),
                    Recipients = recipients.Select(EmailAddress.Parse).ToArray(),
                    Body = MessageBody.FromBytes(message),
                    Has8BitContent = properties.Has8BitContent,
                    NeedsSmtpUtf8 = properties.HeadersNeedSmtpUtf8,
                    TlsRequirement = requirement,
                },
            ],
        };
    }

    [Fact]
    public async Task Plain_delivery_sends_the_bytes_exactly_as_submitted()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("plain.example", 10, "mx.plain.example");
        var mx = await world.AddMxServerAsync("mx.plain.example");
        using var engine = world.CreateEngine();
        // Odd but legal bytes a re-serialising client would change: folded header with tabs, a line
        // starting with a dot (dot-stuffing), 8-bit UTF-8 body, trailing spaces.
        var message = Encoding.UTF8.GetBytes("From: <sender@sender.loopback.test>\r\nSubject: folded\r\n\t  header   \r\nX-Odd:value-without-space\r\n\r\n.leading dot\r\n..two dots\r\nnon-ASCII: grüße \r\n.\r\nend");

        var outcome = await engine.DeliverAsync(Request("plain.example", message, recipients: "rcpt@plain.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Delivered, result.Status);
        Assert.Equal("mx.plain.example", result.Host);
        var received = Assert.Single(mx.Messages);
        // The only change allowed: the missing final CRLF that SMTP requires (RFC 5321 §4.1.1.4).
        Assert.Equal([.. message, (byte)'\r', (byte)'\n'], received.Data);
        Assert.True(received.Tls);
        Assert.Contains("BODY=8BITMIME", received.MailParameters);
        var connection = Assert.Single(outcome.Connections);
        Assert.Equal(CertificateVerification.Pkix, connection.Verification);
        Assert.Equal(TlsRptPolicyType.NoPolicyFound, outcome.RecipientDomainResult!.Policy.Type);
        Assert.Equal(1, outcome.RecipientDomainResult.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task Null_mx_fails_permanently_without_connecting()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddNullMx("nullmx.example");
        var mx = await world.AddMxServerAsync("nullmx.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("nullmx.example", Message("s@x", "r@nullmx.example"), recipients: "r@nullmx.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Permanent, result.Status);
        Assert.Equal("5.1.10", result.Reply.EnhancedCode);
        Assert.Empty(outcome.Connections);
        Assert.Equal(0, mx.ConnectionCount);
    }

    [Fact]
    public async Task Cname_chain_is_followed_but_mta_sts_is_only_asked_at_the_original_domain()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddCname("alias.example", "middle.example").AddCname("middle.example", "target.example").AddMx("target.example", 5, "mx.target.example");
        var mx = await world.AddMxServerAsync("mx.target.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("alias.example", Message("s@x", "r@alias.example"), recipients: "r@alias.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Equal(["r@alias.example"], Assert.Single(mx.Messages).Recipients);
        var txtQueries = world.Dns.Queries.Where(q => q.Type == "TXT").Select(q => q.Name.TrimEnd('.')).ToArray();
        Assert.Contains("_mta-sts.alias.example", txtQueries);
        Assert.DoesNotContain("_mta-sts.target.example", txtQueries);
        Assert.DoesNotContain("_mta-sts.middle.example", txtQueries);
    }

    [Fact]
    public async Task Domain_without_mx_is_its_own_implicit_mx()
    {
        await using var world = await LoopbackWorld.StartAsync();
        var server = await world.AddMxServerAsync("implicit.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("implicit.example", Message("s@x", "r@implicit.example"), recipients: "r@implicit.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Delivered, result.Status);
        Assert.Equal("implicit.example", result.Host);
        Assert.Single(server.Messages);
    }

    [Fact]
    public async Task Mta_sts_enforce_with_an_untrusted_certificate_is_not_delivered_and_is_reported()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("sts.example", 10, "mx.sts.example");
        world.PublishMtaSts("sts.example", "enforce", ["mx.sts.example"]);
        var mx = await world.AddMxServerAsync("mx.sts.example", o => o.Certificate = TestPki.SelfSigned("mx.sts.example"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("sts.example", Message("s@x", "r@sts.example"), recipients: "r@sts.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(mx.Messages);
        var domainResult = outcome.RecipientDomainResult!;
        Assert.Equal(TlsRptPolicyType.Sts, domainResult.Policy.Type);
        Assert.Contains("mx.sts.example", domainResult.Policy.MxHosts);
        Assert.Contains(domainResult.FailureDetails, d => d.ResultType == TlsRptResultType.CertificateNotTrusted && d.ReceivingMxHostname == "mx.sts.example");
        Assert.True(domainResult.Summary.TotalFailureSessionCount >= 1);
        Assert.Equal(0, domainResult.Summary.TotalSuccessfulSessionCount);
        // No plaintext retry under an enforced policy.
        Assert.DoesNotContain(outcome.Connections, c => c.PlaintextRetry);
    }

    [Fact]
    public async Task Mta_sts_testing_with_an_expired_certificate_is_delivered_and_reported()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("testing.example", 10, "mx.testing.example");
        world.PublishMtaSts("testing.example", "testing", ["mx.testing.example"]);
        var mx = await world.AddMxServerAsync("mx.testing.example", o => o.Certificate = world.Pki.IssueExpired("mx.testing.example"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("testing.example", Message("s@x", "r@testing.example"), recipients: "r@testing.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Single(mx.Messages);
        var domainResult = outcome.RecipientDomainResult!;
        Assert.Equal(TlsRptPolicyType.Sts, domainResult.Policy.Type);
        Assert.Contains(domainResult.FailureDetails, d => d.ResultType == TlsRptResultType.CertificateExpired);
        Assert.Equal(CertificateVerification.Unverified, Assert.Single(outcome.Connections).Verification);
    }

    [Fact]
    public async Task Mx_host_not_in_enforced_policy_is_skipped_and_reported_as_mx_mismatch()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("mismatch.example", 10, "rogue.mismatch.example");
        world.PublishMtaSts("mismatch.example", "enforce", ["mx.mismatch.example"]);
        var rogue = await world.AddMxServerAsync("rogue.mismatch.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("mismatch.example", Message("s@x", "r@mismatch.example"), recipients: "r@mismatch.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Equal(0, rogue.ConnectionCount);
        Assert.Contains(outcome.RecipientDomainResult!.FailureDetails, d => d.FailureReasonCode == "mtasts-policy-mx-mismatch" && d.ReceivingMxHostname == "rogue.mismatch.example");
    }

    [Fact]
    public async Task Tls_required_no_overrides_an_enforced_policy_failure()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("override.example", 10, "rogue.override.example");
        world.PublishMtaSts("override.example", "enforce", ["mx.override.example"]);
        var rogue = await world.AddMxServerAsync("rogue.override.example", o => o.Certificate = TestPki.SelfSigned("wrong.example"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("override.example", Message("s@x", "r@override.example"), TlsRequirement.TlsRequiredNo, recipients: "r@override.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Single(rogue.Messages);
        // Still reported: the domain owner learns about the mismatch.
        Assert.Contains(outcome.RecipientDomainResult!.FailureDetails, d => d.FailureReasonCode == "mtasts-policy-mx-mismatch");
    }

    [Fact]
    public async Task Server_without_starttls_gets_plaintext_and_the_domain_is_told()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("plaintext.example", 10, "mx.plaintext.example");
        var mx = await world.AddMxServerAsync("mx.plaintext.example", withCertificate: false);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("plaintext.example", Message("s@x", "r@plaintext.example"), recipients: "r@plaintext.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.False(Assert.Single(mx.Messages).Tls);
        Assert.Equal(CertificateVerification.None, Assert.Single(outcome.Connections).Verification);
        Assert.Contains(outcome.RecipientDomainResult!.FailureDetails, d => d.ResultType == TlsRptResultType.StartTlsNotSupported);
    }

    [Fact]
    public async Task Tls_failure_is_retried_in_plaintext_when_nothing_requires_tls()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("fallback.example", 10, "mx.fallback.example");
        var mx = await world.AddMxServerAsync("mx.fallback.example", o => o.StartTlsReply = new SmtpServerReply(454, "4.7.0", "TLS not available now"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("fallback.example", Message("s@x", "r@fallback.example"), recipients: "r@fallback.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.False(Assert.Single(mx.Messages).Tls);
        Assert.Equal(2, outcome.Connections.Count);
        Assert.False(outcome.Connections[0].PlaintextRetry);
        Assert.True(outcome.Connections[1].PlaintextRetry);
        Assert.Contains(outcome.RecipientDomainResult!.FailureDetails, d => d.ResultType == TlsRptResultType.StartTlsNotSupported && d.FailureReasonCode == "smtp-starttls-reply-code-454");
    }

    [Fact]
    public async Task Requiretls_message_to_a_host_without_dane_or_mta_sts_fails_permanently_with_5_7_30()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("norequire.example", 10, "mx1.norequire.example").AddMx("norequire.example", 20, "mx2.norequire.example");
        var mx1 = await world.AddMxServerAsync("mx1.norequire.example", o => o.AdvertiseRequireTls = true);
        var mx2 = await world.AddMxServerAsync("mx2.norequire.example");
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("norequire.example", Message("s@x", "r@norequire.example"), TlsRequirement.RequireTls, recipients: "r@norequire.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Permanent, result.Status);
        Assert.Equal("5.7.30", result.Reply.EnhancedCode);
        Assert.Empty(mx1.Messages);
        Assert.Empty(mx2.Messages);
    }

    [Fact]
    public async Task Requiretls_with_enforced_mta_sts_goes_to_the_host_that_supports_it()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("requiretls.example", 10, "mx1.requiretls.example").AddMx("requiretls.example", 20, "mx2.requiretls.example");
        world.PublishMtaSts("requiretls.example", "enforce", ["*.requiretls.example"]);
        var mx1 = await world.AddMxServerAsync("mx1.requiretls.example");
        var mx2 = await world.AddMxServerAsync("mx2.requiretls.example", o => o.AdvertiseRequireTls = true);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("requiretls.example", Message("s@x", "r@requiretls.example"), TlsRequirement.RequireTls, recipients: "r@requiretls.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(mx1.Messages);
        Assert.Contains("REQUIRETLS", Assert.Single(mx2.Messages).MailParameters);
    }

    [Fact]
    public async Task Rcptmax_splits_recipients_into_several_transactions()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("limits.example", 10, "mx.limits.example");
        var mx = await world.AddMxServerAsync("mx.limits.example", o => o.RcptMax = 2);
        using var engine = world.CreateEngine();
        var recipients = Enumerable.Range(1, 5).Select(i => $"r{i}@limits.example").ToArray();

        var outcome = await engine.DeliverAsync(Request("limits.example", Message("s@x", "r1@limits.example"), recipients: recipients), CancellationToken.None);

        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(3, mx.TransactionCount);
        Assert.Equal(1, mx.ConnectionCount);
        Assert.Equal([2, 2, 1], mx.Messages.Select(m => m.Recipients.Count).ToArray());
        Assert.Equal(recipients.Order(), mx.Messages.SelectMany(m => m.Recipients).Order());
    }

    [Fact]
    public async Task Per_recipient_results_550_is_permanent_451_temporary_and_452_goes_to_the_next_transaction()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("mixed.example", 10, "mx.mixed.example");
        var mx = await world.AddMxServerAsync("mx.mixed.example", o => o.OnRcpt = context => context.Recipient switch
        {
            "gone@mixed.example" => new SmtpServerReply(550, "5.1.1", "no such user"),
            "busy@mixed.example" => new SmtpServerReply(451, "4.3.0", "try later"),
            // After two recipients in a transaction the server wants the rest in another one.
            _ when context.RecipientIndex >= 3 => new SmtpServerReply(452, "4.5.3", "too many recipients"),
            _ => null,
        });
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("mixed.example", Message("s@x", "a@mixed.example"), recipients: ["a@mixed.example", "gone@mixed.example", "busy@mixed.example", "b@mixed.example", "c@mixed.example"]), CancellationToken.None);

        var byRecipient = outcome.Recipients.ToDictionary(r => r.Recipient.ToString());
        Assert.Equal(RecipientStatus.Delivered, byRecipient["a@mixed.example"].Status);
        Assert.Equal(RecipientStatus.Permanent, byRecipient["gone@mixed.example"].Status);
        Assert.Equal("5.1.1", byRecipient["gone@mixed.example"].Reply.EnhancedCode);
        Assert.Equal(RecipientStatus.Temporary, byRecipient["busy@mixed.example"].Status);
        Assert.Equal(RecipientStatus.Delivered, byRecipient["b@mixed.example"].Status);
        Assert.Equal(RecipientStatus.Delivered, byRecipient["c@mixed.example"].Status);
        Assert.Equal(2, mx.TransactionCount);
    }

    [Fact]
    public async Task Stalling_server_is_a_temporary_failure_after_the_timeout()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("stall.example", 10, "mx.stall.example");
        await world.AddMxServerAsync("mx.stall.example", o => o.Stall = SmtpStall.AfterRcpt);
        using var engine = world.CreateEngine(commandTimeout: TimeSpan.FromSeconds(1));

        var outcome = await engine.DeliverAsync(Request("stall.example", Message("s@x", "r@stall.example"), recipients: "r@stall.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
    }

    [Fact]
    public async Task Private_addresses_are_refused_unless_allowed()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("private.example", 10, "mx.private.example");
        var mx = await world.AddMxServerAsync("mx.private.example");
        using var engine = world.CreateEngine(allowPrivateAddresses: false);

        var outcome = await engine.DeliverAsync(Request("private.example", Message("s@x", "r@private.example"), recipients: "r@private.example"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("loopback", result.Reply.Text, StringComparison.Ordinal);
        Assert.Equal(0, mx.ConnectionCount);
    }

    [Fact]
    public async Task Dnssec_bogus_recipient_domain_is_reported_with_the_extended_error()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.MarkBogus("bogus.example", 6);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(Request("bogus.example", Message("s@x", "r@bogus.example"), recipients: "r@bogus.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        var detail = Assert.Single(outcome.RecipientDomainResult!.FailureDetails);
        Assert.Equal("dns-extended-error-6-DNSSEC-Bogus", detail.FailureReasonCode);
        Assert.Equal(TlsRptResultType.ValidationFailure, detail.ResultType);
    }

    [Fact]
    public async Task Dual_stack_host_is_dialled_in_the_other_family_on_the_next_attempt_and_a_first_policy_rejection_is_temporary()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("dual.example", 10, "mx.dual.example");
        var v4 = await world.AddMxServerAsync("mx.dual.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.7.1", "your address is listed"));
        var v6 = await world.AddMxServerAsync("mx.dual.example", address: IPAddress.IPv6Loopback);
        using var engine = world.CreateEngine();
        var dialled = new Dictionary<string, List<IPAddress>>(StringComparer.Ordinal)
        {
            // An earlier attempt went over IPv6, so this one starts with IPv4.
            ["mx.dual.example"] = [IPAddress.IPv6Loopback],
        };
        var message = Message("s@x", "r@dual.example");
        var first = Request("dual.example", message, recipients: "r@dual.example");
        var firstRequest = new DeliveryRequest { Destination = first.Destination, Messages = first.Messages, Attempt = 1, DialledAddresses = dialled };

        var outcome = await engine.DeliverAsync(firstRequest, CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal(v4.EndPoint.Address, result.Address);
        Assert.Equal(IPAddress.IPv6Loopback, dialled["mx.dual.example"][0]);
        Assert.Equal(v4.EndPoint.Address, dialled["mx.dual.example"][^1]);

        var second = new DeliveryRequest { Destination = first.Destination, Messages = first.Messages, Attempt = 2, DialledAddresses = dialled };
        var retry = await engine.DeliverAsync(second, CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(retry.Recipients).Status);
        Assert.Single(v6.Messages);
    }
}

public class DeliveryEngineConnectionReuseTests
{
    [Fact]
    public async Task Several_messages_to_one_domain_share_one_connection_with_a_transaction_each()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("reuse.example", 10, "mx.reuse.example");
        var mx = await world.AddMxServerAsync("mx.reuse.example");
        using var engine = world.CreateEngine();
        var messages = Enumerable.Range(1, 3).Select(i => new OutboundMessage
        {
            Id = $"m{i}",
            Sender = EmailAddress.Parse($"sender{i}@sender.loopback.test"),
            Recipients = [EmailAddress.Parse($"r{i}@reuse.example"), EmailAddress.Parse("all@reuse.example")],
            Body = MessageBody.FromBytes(DeliveryEngineTests.Message($"sender{i}@sender.loopback.test", "all@reuse.example", $"message {i}")),
        }).ToArray();

        var outcome = await engine.DeliverAsync(new DeliveryRequest { Destination = NextHop.Parse("reuse.example"), Messages = messages }, CancellationToken.None);

        Assert.Equal(6, outcome.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        Assert.Equal(1, mx.ConnectionCount);
        Assert.Equal(3, mx.TransactionCount);
        Assert.Equal(["sender1@sender.loopback.test", "sender2@sender.loopback.test", "sender3@sender.loopback.test"], mx.Messages.Select(m => m.MailFrom));
        Assert.Equal(["m1", "m1", "m2", "m2", "m3", "m3"], outcome.Recipients.Select(r => r.MessageId));
    }

    [Fact]
    public async Task A_refused_recipient_among_accepted_ones_stays_permanent_even_on_a_dual_stack_host()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("partial.example", 10, "mx.partial.example").AddAaaa("mx.partial.example", "::1");
        var mx = await world.AddMxServerAsync("mx.partial.example", o => o.OnRcpt = c => c.Recipient.StartsWith("blocked", StringComparison.Ordinal) ? new SmtpServerReply(550, "5.7.1", "policy") : null);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("partial.example", DeliveryEngineTests.Message("s@x", "ok@partial.example"), recipients: ["ok@partial.example", "blocked@partial.example"]), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, outcome.Recipients[0].Status);
        Assert.Equal(RecipientStatus.Permanent, outcome.Recipients[1].Status);
        Assert.Single(mx.Messages);
    }
}
