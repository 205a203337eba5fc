using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Smtp;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

/// <summary>The TLS posture and the local failure reason the engine puts on each recipient result (telemetry's tls and reason tags).</summary>
public class TlsPostureTests
{
    private static async Task<RecipientResult> DeliverAsync(LoopbackWorld world, string domain)
    {
        using var engine = world.CreateEngine();
        var outcome = await engine.DeliverAsync(Request(domain, Message("s@x", $"r@{domain}"), recipients: $"r@{domain}"), CancellationToken.None);
        return Assert.Single(outcome.Recipients);
    }

    [Fact]
    public async Task The_plaintext_retry_after_a_refused_starttls_is_plaintext()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("plain.example", 10, "mx.plain.example");
        await world.AddMxServerAsync("mx.plain.example", o => o.StartTlsReply = new SmtpServerReply(454, "4.7.0", "no TLS today"));

        var result = await DeliverAsync(world, "plain.example");

        Assert.Equal(RecipientStatus.Delivered, result.Status);
        Assert.Equal(TlsPosture.Plaintext, result.Tls);
        Assert.Equal(LocalFailure.None, result.LocalFailure);
    }

    [Fact]
    public async Task An_untrusted_certificate_under_enforced_mta_sts_is_a_tls_failure_before_mail_from()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("sts.example", 10, "mx.sts.example");
        world.PublishMtaSts("sts.example", "enforce", ["mx.sts.example"]);
        await world.AddMxServerAsync("mx.sts.example", o => o.Certificate = TestPki.SelfSigned("mx.sts.example"));

        var result = await DeliverAsync(world, "sts.example");

        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal(TlsPosture.None, result.Tls);
        Assert.Equal(LocalFailure.Tls, result.LocalFailure);
    }

    [Fact]
    public async Task An_mx_outside_the_enforced_policy_is_a_policy_failure()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("mismatch.example", 10, "mx.mismatch.example");
        world.PublishMtaSts("mismatch.example", "enforce", ["mx.elsewhere.example"]);
        await world.AddMxServerAsync("mx.mismatch.example");

        var result = await DeliverAsync(world, "mismatch.example");

        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal(LocalFailure.Policy, result.LocalFailure);
    }

    [Fact]
    public async Task A_host_where_nothing_listens_is_a_connection_failure()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("closed.example", 10, "mx.closed.example");
        world.Zone.AddA("mx.closed.example", LoopbackWorld.NewAddress().ToString());

        var result = await DeliverAsync(world, "closed.example");

        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal(TlsPosture.None, result.Tls);
        Assert.Equal(LocalFailure.Connection, result.LocalFailure);
    }
}
