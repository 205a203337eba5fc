using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Shaping;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Shaping;

/// <summary>
/// Throttling through the whole queue: a receiver that answers Microsoft's "451 4.7.650 … rate limited"
/// after a few messages a minute slows the queue down instead of burning the messages' retry budget —
/// nothing bounces, no attempt is spent on being throttled, every message arrives once — and a healthy
/// domain beside it is delivered in full in the first round, while the throttled one waits out its pause.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ThrottledQueueTests(AzuriteFixture azurite)
{
    // Microsoft's published text (sendersupport.olc.protection.outlook.com), as the bounce corpus has it.
    private static readonly SmtpServerReply MicrosoftRateLimited = new(451, "4.7.650", "The mail server [127.0.0.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://aka.ms/postmaster (S775)");

    [Fact]
    public async Task A_throttling_receiver_slows_the_queue_nothing_bounces_everything_arrives_and_a_healthy_domain_is_not_held_up()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("throttled.example", 10, "mx.throttled.example");
        world.Network.Zone.AddMx("healthy.example", 10, "mx.healthy.example");
        var throttledMx = await world.Network.AddMxServerAsync("mx.throttled.example", o => o.Throttle = new SmtpThrottle(3, MicrosoftRateLimited, SmtpThrottleStage.Rcpt, TimeSpan.FromMinutes(1), world.Time));
        var healthyMx = await world.Network.AddMxServerAsync("mx.healthy.example");
        // No waiting for permits inside a run: the clock is the test's, and a run must never sit on a worker.
        var rules = TrafficShapingRules.Default.WithOverrides("""{ "throttling": { "maxWaitInRun": "00:00:00" } }""");
        using var engine = world.Network.CreateEngine(time: world.Time, maxSessionsPerHost: 1, shaping: rules);
        var handler = new DomainDeliveryHandler(world.Queue, engine, "mta.loopback.test");

        const int PerDomain = 8;
        for (var i = 0; i < PerDomain; i++)
        {
            foreach (var domain in new[] { "throttled.example", "healthy.example" })
            {
                await world.SubmitAsync("app@sender.example", [$"user{i}@{domain}"], Message(domain, i));
            }
        }

        // Round one: both domains run, as two wake-ups would.
        await handler.HandleAsync(new WakeUp("throttled.example"), CancellationToken.None);
        await handler.HandleAsync(new WakeUp("healthy.example"), CancellationToken.None);

        // The healthy domain got everything in the first round, while the throttled one is paused: its mail
        // did not wait behind the throttled domain's (a domain's records are taken in message-id order, so
        // the order within a domain is not submission order, and is not asserted).
        Assert.Equal(PerDomain, healthyMx.MessagesAccepted);
        Assert.Equal(Enumerable.Range(0, PerDomain).Select(i => $"healthy.example #{i}").Order(), healthyMx.Messages.Select(SubjectOf).Order());
        Assert.Equal(3, throttledMx.MessagesAccepted);
        Assert.Equal(1, throttledMx.ThrottledReplies);
        var waiting = await RecordsAsync(world, "throttled.example");
        Assert.Equal(PerDomain - 3, waiting.Count(r => r.State == RecipientState.Queued));
        // Being throttled spends nothing: the waiting recipients have no attempt counted and no DSN is owed.
        Assert.All(waiting.Where(r => r.State == RecipientState.Queued), r => Assert.Equal(0, r.Attempts));
        Assert.Contains(waiting, r => r.EventList.Any(e => e.Type == "throttled" && e.Detail.Contains("4.7.650", StringComparison.Ordinal)));
        Assert.All(waiting.Where(r => r.State == RecipientState.Queued), r => Assert.True(r.NextAttemptAt > world.Time.GetUtcNow()));

        // Later rounds: the clock moves on; each run sends what the lowered budget allows.
        for (var round = 0; round < 30 && throttledMx.MessagesAccepted < PerDomain; round++)
        {
            world.Time.Advance(TimeSpan.FromMinutes(1));
            await handler.HandleAsync(new WakeUp("throttled.example"), CancellationToken.None);
        }

        var final = await RecordsAsync(world, "throttled.example");
        Assert.All(final, r => Assert.Equal((RecipientState.Delivered, 1), (r.State, r.Attempts)));
        // Each message arrived exactly once.
        Assert.Equal(Enumerable.Range(0, PerDomain).Select(i => $"throttled.example #{i}").Order(), throttledMx.Messages.Select(SubjectOf).Order());
        // No DSN was submitted: the only records are the sixteen recipients.
        Assert.Empty(await RecordsAsync(world, "sender.example"));
    }

    private static string Message(string domain, int index) =>
        $"From: <app@sender.example>\r\nTo: <user{index}@{domain}>\r\nSubject: {domain} #{index}\r\nMessage-ID: <{Guid.NewGuid():N}@sender.example>\r\n\r\nHello.\r\n";

    private static string SubjectOf(ReceivedSmtpMessage message)
    {
        var text = Encoding.ASCII.GetString(message.Data);
        var start = text.IndexOf("Subject: ", StringComparison.Ordinal) + "Subject: ".Length;
        return text[start..text.IndexOf('\r', start)];
    }

    private static async Task<List<RecipientRecord>> RecordsAsync(QueueWorld world, string domain)
    {
        var list = new List<RecipientRecord>();
        await foreach (var record in world.Storage.Recipients.QueryAsync<RecipientRecord>(r => r.PartitionKey == domain && r.RowKey.CompareTo(RecipientRecord.RecordRowKeyLimit) < 0))
        {
            list.Add(record);
        }
        return list;
    }
}
