using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Delivery;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Dns;

/// <summary>
/// A recipient domain that does not exist (NXDOMAIN, also at the end of a CNAME chain) or exists with
/// neither MX nor address records bounces at once with 5.1.2, as Postfix does: retrying it for days only
/// delays the sender's news. Lookups that could not conclude anything stay temporary.
/// </summary>
public class NonExistentDomainTests
{
    [Theory]
    [InlineData("nxdomain")]
    [InlineData("cname-to-nxdomain")]
    [InlineData("no-mx-no-address")]
    public async Task A_domain_that_cannot_receive_mail_fails_permanently_with_5_1_2_without_connecting(string shape)
    {
        await using var world = await LoopbackWorld.StartAsync();
        var domain = $"{shape}.example";
        switch (shape)
        {
            case "cname-to-nxdomain":
                world.Zone.AddCname(domain, "missing-target.example");
                break;
            case "no-mx-no-address":
                world.Zone.AddTxt(domain, "v=spf1 -all"); // the name exists, with neither MX nor A/AAAA
                break;
            default:
                break; // not in the zone at all: NXDOMAIN
        }
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request(domain, DeliveryEngineTests.Message("s@x", $"r@{domain}"), recipients: $"r@{domain}"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Permanent, result.Status);
        Assert.Equal("5.1.2", result.Reply.EnhancedCode);
        Assert.True(result.Reply.Code is >= 500 and < 600);
        Assert.Empty(outcome.Connections);
    }

    [Theory]
    [InlineData("servfail")]
    [InlineData("silent")]
    [InlineData("bogus")]
    [InlineData("mx-names-missing-host")]
    [InlineData("address-servfail")]
    public async Task Lookups_that_conclude_nothing_and_missing_mx_hosts_stay_temporary(string shape)
    {
        await using var world = await LoopbackWorld.StartAsync();
        var domain = $"{shape}.example";
        switch (shape)
        {
            case "servfail":
                world.Zone.MarkServFail(domain);
                break;
            case "silent":
                world.Zone.MarkSilent(domain);
                break;
            case "bogus":
                world.Zone.MarkBogus(domain);
                break;
            case "mx-names-missing-host":
                // Like Postfix: an MX host that does not exist may be a zone being edited; defer, do not bounce.
                world.Zone.AddMx(domain, 10, "missing-host.example");
                break;
            default:
                world.Zone.AddTxt(domain, "exists");
                world.Zone.MarkServFail(domain);
                break;
        }
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request(domain, DeliveryEngineTests.Message("s@x", $"r@{domain}"), recipients: $"r@{domain}"), CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.StartsWith("4.", result.Reply.EnhancedCode, StringComparison.Ordinal);
    }
}

[Collection(AzuriteCollection.Name)]
public class NonExistentDomainQueueTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Mail_to_a_domain_that_does_not_exist_is_failed_in_the_queue_and_bounced_at_the_first_attempt()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("sender.example", 10, "mx.sender.example");
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");

        var submitted = await world.SubmitAsync("sender@sender.example", ["r@no-such-domain.example"]);
        await world.DrainAsync();

        var record = await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None);
        Assert.Equal(RecipientState.Failed, record!.State);
        Assert.Equal(1, record.Attempts);
        Assert.Equal("5.1.2", record.LastEnhancedCode);
        var dsn = Encoding.UTF8.GetString(Assert.Single(senderMx.Messages).Data);
        Assert.Contains("Action: failed", dsn, StringComparison.Ordinal);
        Assert.Contains("Status: 5.1.2", dsn, StringComparison.Ordinal);
    }
}
