using CloudDelivery.Addressing;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Tests.Queue;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

public class SmarthostTests
{
    private static SmarthostOptions Relay(LoopbackWorld world, string password = "secret") =>
        new() { Host = "relay.loopback.test", Port = world.SmtpPort, UserName = "app", Password = password };

    [Fact]
    public async Task Mail_goes_through_the_smarthost_with_starttls_and_login()
    {
        await using var world = await LoopbackWorld.StartAsync();
        var relay = await world.AddMxServerAsync("relay.loopback.test", o => o.Credentials = ("app", "secret"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverViaSmarthostAsync(Request("anywhere.example", Message("s@x", "r@anywhere.example"), recipients: ["r@anywhere.example", "q@anywhere.example"]), Relay(world), CancellationToken.None);

        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        var received = Assert.Single(relay.Messages);
        Assert.True(received.Tls);
        Assert.Equal(["r@anywhere.example", "q@anywhere.example"], received.Recipients);
        Assert.Equal(Smtp.CertificateVerification.Pkix, Assert.Single(outcome.Connections).Verification);
    }

    [Fact]
    public async Task Wrong_password_is_a_temporary_failure_not_a_bounce()
    {
        await using var world = await LoopbackWorld.StartAsync();
        var relay = await world.AddMxServerAsync("relay.loopback.test", o => o.Credentials = ("app", "secret"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverViaSmarthostAsync(Request("anywhere.example", Message("s@x", "r@anywhere.example"), recipients: "r@anywhere.example"), Relay(world, password: "wrong"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("login failed", result.Reply.Text, StringComparison.Ordinal);
        Assert.Empty(relay.Messages);
    }

    [Fact]
    public async Task Smarthost_without_starttls_gets_nothing()
    {
        await using var world = await LoopbackWorld.StartAsync();
        var relay = await world.AddMxServerAsync("relay.loopback.test", withCertificate: false);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverViaSmarthostAsync(Request("anywhere.example", Message("s@x", "r@anywhere.example"), recipients: "r@anywhere.example"), Relay(world), CancellationToken.None);

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(outcome.Recipients).Status);
        Assert.Empty(relay.Messages);
    }

    [Fact]
    public void Sender_domains_choose_the_relay_and_an_empty_list_takes_everyone()
    {
        var some = new SmarthostOptions { Host = "relay", SenderDomains = "relayed.example" };
        var all = new SmarthostOptions { Host = "relay" };

        Assert.True(some.Handles(EmailAddress.Parse("a@relayed.example")));
        Assert.False(some.Handles(EmailAddress.Parse("a@direct.example")));
        Assert.False(some.Handles(null));
        Assert.True(all.Handles(null));
    }
}

[Collection(AzuriteCollection.Name)]
public class QueuedSmarthostTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Queue_sends_configured_senders_through_the_relay_and_others_direct()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("dest.example", 10, "mx.dest.example");
        var mx = await world.Network.AddMxServerAsync("mx.dest.example");
        var relay = await world.Network.AddMxServerAsync("relay.loopback.test", o => o.Credentials = ("app", "secret"));
        var handler = new DomainDeliveryHandler(world.Queue, world.Engine, "mta.loopback.test", smarthost: new SmarthostOptions
        {
            Host = "relay.loopback.test",
            Port = world.Network.SmtpPort,
            UserName = "app",
            Password = "secret",
            SenderDomains = "relayed.example",
        });
        await world.SubmitAsync("a@relayed.example", ["r1@dest.example"]);
        await world.SubmitAsync("b@direct.example", ["r2@dest.example"]);

        await handler.HandleAsync(new WakeUp("dest.example"), CancellationToken.None);

        Assert.Equal("a@relayed.example", Assert.Single(relay.Messages).MailFrom);
        Assert.Equal("b@direct.example", Assert.Single(mx.Messages).MailFrom);
    }
}
