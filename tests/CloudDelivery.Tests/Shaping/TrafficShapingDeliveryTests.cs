using System.Text;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;
using CloudDelivery.Shaping;
using CloudDelivery.Tests.Delivery;
using Microsoft.Extensions.Time.Testing;

namespace CloudDelivery.Tests.Shaping;

/// <summary>
/// Traffic shaping in real deliveries to loopback MX hosts: what a budget does not allow is not sent but
/// comes back Deferred with a RetryAfter (no attempt spent), and a receiver that throttles us with Gmail's
/// exact replies gets no further message during the pause, a lower rate, and its rate back once it accepts
/// mail again. Counts are taken at the receiving peer.
/// </summary>
public sealed class TrafficShapingDeliveryTests
{
    // Google's SMTP error reference (support.google.com/a/answer/3726730), word for word.
    private static readonly SmtpServerReply GmailReceivingTooFast = new(450, "4.2.1", "The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time. If the user is able to receive mail at that time, your message will be delivered. For more information, please visit https://support.google.com/mail/?p=ReceivingRate - gsmtp");

    private static readonly SmtpServerReply GmailUnusualRate = new(421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. - gsmtp");

    [Fact]
    public async Task Messages_beyond_the_rate_are_not_sent_but_deferred_with_a_retry_after_spread_over_the_budget()
    {
        var clock = new FakeTimeProvider();
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("limited.example", 10, "mx.limited.example");
        var mx = await world.AddMxServerAsync("mx.limited.example");
        using var engine = world.CreateEngine(time: clock, maxSessionsPerHost: 1, shaping: Rules("""{ "name": "limited", "domains": ["limited.example"], "messagesPerMinute": 3 }"""));

        var outcome = await engine.DeliverAsync(Request("limited.example", 8), CancellationToken.None);

        Assert.Equal(3, mx.MessagesAccepted);
        Assert.Equal(3, outcome.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        var deferred = outcome.Recipients.Where(r => r.Status == RecipientStatus.Deferred).ToList();
        Assert.Equal(5, deferred.Count);
        Assert.All(deferred, r => Assert.Equal((451, "4.4.5"), (r.Reply.Code, r.Reply.EnhancedCode)));
        // One permit per 20 s: the deferred messages come back one period apart, not all at once.
        Assert.Equal([20, 40, 60, 80, 100], deferred.Select(r => (int)r.RetryAfter!.Value.TotalSeconds).Order());

        clock.Advance(TimeSpan.FromMinutes(1));
        var again = await engine.DeliverAsync(Request("limited.example", 5, deferred), CancellationToken.None);

        Assert.Equal(6, mx.MessagesAccepted);
        Assert.Equal(3, again.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        Assert.Equal(2, again.Recipients.Count(r => r.Status == RecipientStatus.Deferred));
    }

    [Fact]
    public async Task Domains_whose_mx_is_google_share_one_budget()
    {
        var clock = new FakeTimeProvider();
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("first.example", 10, "aspmx.l.google.com");
        world.Zone.AddMx("second.example", 10, "aspmx.l.google.com");
        var mx = await world.AddMxServerAsync("aspmx.l.google.com");
        var rules = TrafficShapingRules.Default.WithOverrides("""{ "throttling": { "maxWaitInRun": "00:00:00" }, "rules": [ { "name": "google", "mxSuffixes": ["google.com"], "messagesPerMinute": 4 } ] }""");
        using var engine = world.CreateEngine(time: clock, shaping: rules);

        var first = await engine.DeliverAsync(Request("first.example", 3), CancellationToken.None);
        var second = await engine.DeliverAsync(Request("second.example", 3), CancellationToken.None);

        Assert.All(first.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal([RecipientStatus.Delivered, RecipientStatus.Deferred, RecipientStatus.Deferred], second.Recipients.Select(r => r.Status).Order());
        Assert.Equal(4, mx.MessagesAccepted);
        Assert.Equal(["google"], engine.Shaper.Keys);
    }

    [Fact]
    public async Task The_connection_limit_caps_the_sessions_the_host_sees()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("busy.example", 10, "mx.busy.example");
        var mx = await world.AddMxServerAsync("mx.busy.example");
        using var engine = world.CreateEngine(maxSessionsPerHost: 4, shaping: Rules("""{ "name": "busy", "domains": ["busy.example"], "connections": 2 }"""));

        var outcome = await engine.DeliverAsync(Request("busy.example", 16), CancellationToken.None);

        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(16, mx.MessagesAccepted);
        Assert.Equal(2, mx.ConnectionCount);
        Assert.True(mx.PeakConcurrentConnections <= 2);
    }

    [Fact]
    public async Task With_every_connection_of_the_budget_in_use_a_run_defers_everything_without_dialling()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("full.example", 10, "mx.full.example");
        var mx = await world.AddMxServerAsync("mx.full.example");
        using var engine = world.CreateEngine(shaping: Rules("""{ "name": "full", "domains": ["full.example"], "connections": 1 }"""));
        // Another run of this process holds the budget's only connection.
        using var held = engine.Shaper.BudgetFor("full.example", "mx.full.example").TryOpenConnection();

        var outcome = await engine.DeliverAsync(Request("full.example", 3), CancellationToken.None);

        Assert.All(outcome.Recipients, r =>
        {
            Assert.Equal(RecipientStatus.Deferred, r.Status);
            Assert.Equal(TimeSpan.FromSeconds(30), r.RetryAfter);
        });
        Assert.Equal(0, mx.ConnectionCount);
    }

    [Fact]
    public async Task A_connection_takes_no_more_than_its_messages_per_connection_and_another_takes_the_rest()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("capped.example", 10, "mx.capped.example");
        var mx = await world.AddMxServerAsync("mx.capped.example");
        using var engine = world.CreateEngine(maxSessionsPerHost: 1, shaping: Rules("""{ "name": "capped", "domains": ["capped.example"], "messagesPerConnection": 3 }"""));

        var outcome = await engine.DeliverAsync(Request("capped.example", 7), CancellationToken.None);

        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(7, mx.MessagesAccepted);
        Assert.Equal(3, mx.ConnectionCount);
        Assert.All(mx.Messages.GroupBy(m => m.ConnectionNumber), connection => Assert.True(connection.Count() <= 3));
    }

    [Fact]
    public async Task Gmail_receiving_too_fast_defers_the_run_pauses_and_slows_the_budget_and_it_recovers_on_clean_replies()
    {
        var clock = new FakeTimeProvider();
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("fast.example", 10, "mx.fast.example");
        var mx = await world.AddMxServerAsync("mx.fast.example", o => o.Throttle = new SmtpThrottle(3, GmailReceivingTooFast, SmtpThrottleStage.Rcpt, TimeSpan.FromMinutes(1), clock));
        using var engine = world.CreateEngine(time: clock, maxSessionsPerHost: 1, shaping: Rules(
            """{ "name": "fast", "domains": ["fast.example"], "messagesPerMinute": 60 }""",
            "\"recoveryPerCleanMessage\": 0.2"));

        var outcome = await engine.DeliverAsync(Request("fast.example", 10), CancellationToken.None);

        Assert.Equal(3, outcome.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        Assert.DoesNotContain(outcome.Recipients, r => r.Status is RecipientStatus.Temporary or RecipientStatus.Permanent);
        var deferred = outcome.Recipients.Where(r => r.Status == RecipientStatus.Deferred).ToList();
        Assert.Equal(7, deferred.Count);
        Assert.All(deferred, r => Assert.Equal(TimeSpan.FromMinutes(1), r.RetryAfter));
        // The throttled recipient keeps Gmail's reply (classified throttled); the rest say what held them back.
        var throttled = Assert.Single(deferred, r => r.Reply.Code == 450);
        Assert.Equal("4.2.1", throttled.Reply.EnhancedCode);
        Assert.Equal(BounceCategory.Throttled, BounceClassification.Of(throttled));
        Assert.All(deferred.Where(r => r != throttled), r => Assert.Contains("asked us to slow down", r.Reply.Text, StringComparison.Ordinal));
        // Nothing more was sent after the throttling reply, and the session was ended politely.
        Assert.Equal(3, mx.MessagesAccepted);
        Assert.Equal(1, mx.ThrottledReplies);
        Assert.Equal(1, mx.ConnectionCount);
        Assert.Equal(1, mx.QuitCount);
        var snapshot = Assert.Single(engine.Shaper.Snapshot());
        Assert.Equal(("fast", 30, 1), (snapshot.Key, snapshot.CurrentPerMinute, snapshot.ConsecutiveThrottles));
        Assert.Equal(clock.GetUtcNow() + TimeSpan.FromMinutes(1), snapshot.PausedUntil);

        // During the pause a new run defers everything at once, without dialling.
        clock.Advance(TimeSpan.FromSeconds(30));
        var paused = await engine.DeliverAsync(Request("fast.example", 7, deferred), CancellationToken.None);
        Assert.All(paused.Recipients, r => Assert.Equal((RecipientStatus.Deferred, TimeSpan.FromSeconds(30)), (r.Status, r.RetryAfter)));
        Assert.Equal(1, mx.ConnectionCount);

        // After the pause, clean replies win the rate back; once whole, the backoff is forgotten.
        clock.Advance(TimeSpan.FromSeconds(31));
        var resumed = await engine.DeliverAsync(Request("fast.example", 3, deferred), CancellationToken.None);
        Assert.All(resumed.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(6, mx.MessagesAccepted);
        var recovered = Assert.Single(engine.Shaper.Snapshot());
        Assert.Equal((60, 0, (DateTimeOffset?)null), (recovered.CurrentPerMinute, recovered.ConsecutiveThrottles, recovered.PausedUntil));
    }

    [Fact]
    public async Task Gmail_unusual_rate_at_mail_from_is_deferred_not_temporary_and_the_rest_of_the_run_waits()
    {
        var clock = new FakeTimeProvider();
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("spiky.example", 10, "mx.spiky.example");
        var mx = await world.AddMxServerAsync("mx.spiky.example", o => o.Throttle = new SmtpThrottle(2, GmailUnusualRate, SmtpThrottleStage.Mail, TimeSpan.FromMinutes(1), clock));
        using var engine = world.CreateEngine(time: clock, maxSessionsPerHost: 1, shaping: Rules("""{ "name": "spiky", "domains": ["spiky.example"] }"""));

        var outcome = await engine.DeliverAsync(Request("spiky.example", 5), CancellationToken.None);

        Assert.Equal(2, outcome.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
        Assert.Equal(3, outcome.Recipients.Count(r => r.Status == RecipientStatus.Deferred));
        Assert.Single(outcome.Recipients, r => r.Reply.EnhancedCode == "4.7.28");
        Assert.Equal(2, mx.MessagesAccepted);
        Assert.Equal(1, mx.ThrottledReplies);
        Assert.True(engine.Shaper.IsPaused("spiky", out _));
    }

    [Fact]
    public async Task A_domain_throttled_at_connect_is_paused_while_a_healthy_domain_is_delivered_in_full()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("refusing.example", 10, "mx.refusing.example");
        world.Zone.AddMx("healthy.example", 10, "mx.healthy.example");
        var refusing = await world.AddMxServerAsync("mx.refusing.example", o => o.Throttle = new SmtpThrottle(0, GmailUnusualRate, SmtpThrottleStage.Connect, TimeSpan.FromHours(1)));
        var healthy = await world.AddMxServerAsync("mx.healthy.example");
        using var engine = world.CreateEngine(maxSessionsPerHost: 2);

        var outcomes = await Task.WhenAll(
            engine.DeliverAsync(Request("refusing.example", 6), CancellationToken.None),
            engine.DeliverAsync(Request("healthy.example", 6), CancellationToken.None));
        var again = await engine.DeliverAsync(Request("refusing.example", 6), CancellationToken.None);

        Assert.All(outcomes[0].Recipients.Concat(again.Recipients), r => Assert.Equal(RecipientStatus.Deferred, r.Status));
        Assert.All(outcomes[1].Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(6, healthy.MessagesAccepted);
        // Refused once; the pause kept the second run from dialling again.
        Assert.Equal(1, refusing.ConnectionCount);
        Assert.True(engine.Shaper.IsPaused("refusing.example", out _));
        Assert.False(engine.Shaper.IsPaused("healthy.example", out _));
    }

    /// <summary>The given rules (JSON objects) alone, and no waiting for a permit within a run (the clock is fake).</summary>
    private static TrafficShapingRules Rules(string rule, string throttling = "") => TrafficShapingRules.Parse(
        $$"""{ "throttling": { "maxWaitInRun": "00:00:00"{{(throttling.Length > 0 ? ", " + throttling : string.Empty)}} }, "rules": [ {{rule}} ] }""");

    /// <summary><paramref name="count"/> one-recipient messages; the ids of <paramref name="retry"/> when given (a queue's retry).</summary>
    private static DeliveryRequest Request(string domain, int count, List<RecipientResult>? retry = null) => new()
    {
        Destination = NextHop.Parse(domain),
        Messages = Enumerable.Range(0, count).Select(i =>
        {
            var id = retry is null ? $"m{i}" : retry[i].MessageId;
            return new OutboundMessage
            {
                Id = id,
                Sender = EmailAddress.Parse("sender@sender.loopback.test"),
                Recipients = [EmailAddress.Parse($"{id}@{domain}")],
                Body = MessageBody.FromBytes(Encoding.ASCII.GetBytes($"From: <sender@sender.loopback.test>\r\nSubject: shaping {id}\r\n\r\nbody\r\n")),
            };
        }).ToArray(),
    };
}
