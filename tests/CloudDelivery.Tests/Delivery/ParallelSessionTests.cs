using System.Collections.Concurrent;
using System.Text;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// A delivery with many messages for one host spreads them over several sessions: every message still goes
/// exactly once, each session's results are recorded before that session's next transaction, and a host
/// that limits connections simply gets fewer sessions.
/// </summary>
public sealed class ParallelSessionTests
{
    private const int Messages = 12;

    [Fact]
    public async Task Many_messages_go_over_parallel_sessions_each_exactly_once_and_each_result_is_recorded_before_its_session_goes_on()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("busy.example", 10, "mx.busy.example");
        var mx = await world.AddMxServerAsync("mx.busy.example");
        using var engine = world.CreateEngine(maxSessionsPerHost: 4);
        var recorder = new SlowRecorder(mx);

        var outcome = await engine.DeliverAsync(Request("busy.example", recorder), CancellationToken.None);

        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(Enumerable.Range(0, Messages).Select(i => $"m{i}").Order(StringComparer.Ordinal), mx.Messages.Select(MessageIdOf).Order(StringComparer.Ordinal));
        // One session, plus one per further 4 messages, up to the limit: 1 + (12 - 1) / 4 = 3.
        Assert.Equal(3, mx.ConnectionCount);
        Assert.Equal(3, outcome.Connections.Count);
        Assert.True(mx.PeakConcurrentConnections > 1, "the sessions were open at the same time");
        // Sessions waited for their own results' recording, and those waits overlapped (what lets the queue
        // share one storage transaction among them); no transaction was sent while its session's previous
        // results were still unrecorded.
        Assert.True(recorder.PeakConcurrentRecordings > 1, "recordings of different sessions overlapped");
        Assert.Equal(0, recorder.TransactionsBeforeRecorded);
        Assert.Equal(Messages, recorder.Recorded.Count);
        Assert.Equal(Messages, recorder.Recorded.Select(r => r.MessageId).Distinct().Count());
    }

    [Fact]
    public async Task A_host_that_limits_connections_gets_everything_over_the_one_it_accepts()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("strict.example", 10, "mx.strict.example");
        var mx = await world.AddMxServerAsync("mx.strict.example", o => o.MaxConcurrentConnections = 1);
        using var engine = world.CreateEngine(maxSessionsPerHost: 4);
        var recorder = new SlowRecorder(mx);

        var outcome = await engine.DeliverAsync(Request("strict.example", recorder), CancellationToken.None);

        // The extra sessions were greeted with 421 and ended quietly; nothing failed or was deferred.
        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(Messages, mx.Messages.Count);
        Assert.Equal(Messages, mx.Messages.Select(MessageIdOf).Distinct().Count());
        Assert.Single(mx.Messages.Select(m => m.ConnectionNumber).Distinct());
        Assert.Equal(3, mx.ConnectionCount);
    }

    [Fact]
    public async Task When_a_session_is_cut_off_the_others_take_its_remaining_messages()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("cut.example", 10, "mx.cut.example");
        // The first connection's second transaction is answered "421 closing": that session ends.
        var firstConnectionMails = 0;
        var mx = await world.AddMxServerAsync("mx.cut.example", o => o.OnMail = c => c.ConnectionNumber == 1 && Interlocked.Increment(ref firstConnectionMails) == 2
            ? new SmtpServerReply(421, "4.3.2", "shutting down")
            : null);
        using var engine = world.CreateEngine(maxSessionsPerHost: 4);
        var recorder = new SlowRecorder(mx);

        var outcome = await engine.DeliverAsync(Request("cut.example", recorder), CancellationToken.None);

        // The message refused with 421 is temporary, as it was for that host; every other one was delivered once.
        var refused = Assert.Single(outcome.Recipients, r => r.Status != RecipientStatus.Delivered);
        Assert.Equal(RecipientStatus.Temporary, refused.Status);
        Assert.Equal(Messages - 1, mx.Messages.Count);
        Assert.Equal(Messages - 1, mx.Messages.Select(MessageIdOf).Distinct().Count());
        Assert.DoesNotContain(mx.Messages, m => MessageIdOf(m) == refused.MessageId);
        Assert.Equal(Messages, recorder.Recorded.Count);
    }

    [Fact]
    public async Task A_permanent_refusal_bounces_only_its_own_message_not_those_of_a_session_that_was_cut_off()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("mixed.example", 10, "mx.mixed.example");
        // Session 1: its first message is refused for good at the end of DATA. Session 2: its first MAIL is
        // refused for now (421).
        var dataEnds = 0;
        var mails = 0;
        var mx = await world.AddMxServerAsync("mx.mixed.example", o =>
        {
            o.OnDataEnd = c => c.ConnectionNumber == 1 && Interlocked.Increment(ref dataEnds) == 1 ? new SmtpServerReply(554, "5.6.0", "content rejected") : null;
            o.OnMail = c => c.ConnectionNumber == 2 && Interlocked.Increment(ref mails) == 1 ? new SmtpServerReply(421, "4.3.2", "shutting down") : null;
        });
        using var engine = world.CreateEngine(maxSessionsPerHost: 3);
        var recorder = new SlowRecorder(mx);

        var outcome = await engine.DeliverAsync(Request("mixed.example", recorder), CancellationToken.None);

        var notDelivered = outcome.Recipients.Where(r => r.Status != RecipientStatus.Delivered).ToList();
        Assert.Equal(2, notDelivered.Count);
        var refused = Assert.Single(notDelivered, r => r.Status == RecipientStatus.Permanent);
        Assert.Equal("5.6.0", refused.Reply.EnhancedCode);
        // The message refused for now is retried later, not bounced with the other session's 554.
        var cutOff = Assert.Single(notDelivered, r => r.Status == RecipientStatus.Temporary);
        Assert.Equal(421, cutOff.Reply.Code);
        Assert.Equal(Messages - 2, mx.Messages.Count);
    }

    [Fact]
    public async Task In_one_session_too_a_permanent_refusal_is_not_passed_on_to_a_message_refused_for_now()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("mixed1.example", 10, "mx.mixed1.example");
        var dataEnds = 0;
        var mails = 0;
        var mx = await world.AddMxServerAsync("mx.mixed1.example", o =>
        {
            o.OnDataEnd = _ => Interlocked.Increment(ref dataEnds) == 1 ? new SmtpServerReply(554, "5.6.0", "content rejected") : null;
            o.OnMail = _ => Interlocked.Increment(ref mails) == 3 ? new SmtpServerReply(451, "4.3.2", "try again later") : null;
        });
        using var engine = world.CreateEngine(maxSessionsPerHost: 1);

        var outcome = await engine.DeliverAsync(Request("mixed1.example", recorder: null), CancellationToken.None);

        // m0 refused for good; m2 refused for now is deferred with its own reply, not bounced with m0's 554.
        var m0 = outcome.Recipients.Single(r => r.MessageId == "m0");
        Assert.Equal(RecipientStatus.Permanent, m0.Status);
        Assert.Equal(554, m0.Reply.Code);
        var m2 = outcome.Recipients.Single(r => r.MessageId == "m2");
        Assert.Equal(RecipientStatus.Temporary, m2.Status);
        Assert.Equal(451, m2.Reply.Code);
        Assert.All(outcome.Recipients.Where(r => r.MessageId is not ("m0" or "m2")), r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(Messages - 2, mx.Messages.Count);
    }

    [Fact]
    public async Task A_host_tarpitting_further_connections_does_not_hold_up_a_finished_delivery()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("tarpit.example", 10, "mx.tarpit.example");
        var mx = await world.AddMxServerAsync("mx.tarpit.example", o => o.StallGreetingFromConnection = 2);
        var commandTimeout = TimeSpan.FromSeconds(60);
        using var engine = world.CreateEngine(commandTimeout: commandTimeout, maxSessionsPerHost: 4);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var outcome = await engine.DeliverAsync(Request("tarpit.example", new SlowRecorder(mx)), CancellationToken.None);

        // Everything went over the first session; the extra ones, still waiting for a greeting, were called
        // off when nothing was left, instead of holding the delivery (and the domain's lease) for the
        // command timeout. Not a speed check: the bound is half a minute.
        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Single(mx.Messages.Select(m => m.ConnectionNumber).Distinct());
        Assert.True(clock.Elapsed < commandTimeout / 2, $"the delivery waited {clock.Elapsed} for tarpitted sessions");
        Assert.Equal(1, outcome.RecipientDomainResult!.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task One_session_per_host_when_so_configured()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("single.example", 10, "mx.single.example");
        var mx = await world.AddMxServerAsync("mx.single.example");
        using var engine = world.CreateEngine(maxSessionsPerHost: 1);

        var outcome = await engine.DeliverAsync(Request("single.example", recorder: null), CancellationToken.None);

        Assert.All(outcome.Recipients, r => Assert.Equal(RecipientStatus.Delivered, r.Status));
        Assert.Equal(1, mx.ConnectionCount);
        Assert.Equal(Messages, mx.TransactionCount);
    }

    private static string MessageIdOf(ReceivedSmtpMessage message)
    {
        var text = Encoding.ASCII.GetString(message.Data);
        var start = text.IndexOf("X-Test-Id: ", StringComparison.Ordinal) + "X-Test-Id: ".Length;
        return text[start..text.IndexOf('\r', start)];
    }

    private static DeliveryRequest Request(string domain, SlowRecorder? recorder) => new()
    {
        Destination = NextHop.Parse(domain),
        Messages = Enumerable.Range(0, Messages).Select(i => new OutboundMessage
        {
            Id = $"m{i}",
            Sender = EmailAddress.Parse("sender@sender.loopback.test"),
            Recipients = [EmailAddress.Parse($"rcpt{i}@{domain}")],
            Body = MessageBody.FromBytes(Encoding.ASCII.GetBytes($"From: <sender@sender.loopback.test>\r\nX-Test-Id: m{i}\r\nSubject: parallel\r\n\r\nbody {i}\r\n")),
        }).ToArray(),
        ResultsReady = recorder is null ? null : recorder.RecordAsync,
    };

    /// <summary>
    /// Stands in for the queue's outcome write: takes a while, as storage does, and checks that the server
    /// got no further transaction on a session while that session's results were still being recorded.
    /// </summary>
    private sealed class SlowRecorder(LoopbackSmtpServer server)
    {
        private int recording;
        private int peak;
        private int violations;

        public ConcurrentBag<RecipientResult> Recorded { get; } = [];

        public int PeakConcurrentRecordings => Volatile.Read(ref peak);

        public int TransactionsBeforeRecorded => Volatile.Read(ref violations);

        public async Task RecordAsync(IReadOnlyList<RecipientResult> results, CancellationToken cancellationToken)
        {
            var now = Interlocked.Increment(ref recording);
            lock (this)
            {
                peak = Math.Max(peak, now);
            }
            var before = server.Messages.Count;
            var connectionsBefore = server.Messages.Where(m => results.Any(r => MessageIdOf(m) == r.MessageId)).Select(m => m.ConnectionNumber).ToHashSet();
            await Task.Delay(40, cancellationToken);
            // Whatever the server received meanwhile must have come over other sessions.
            if (server.Messages.Skip(before).Any(m => connectionsBefore.Contains(m.ConnectionNumber)))
            {
                Interlocked.Increment(ref violations);
            }
            foreach (var result in results)
            {
                Recorded.Add(result);
            }
            Interlocked.Decrement(ref recording);
        }
    }
}
