using System.Diagnostics;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Smtp;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// Runs alone: the memory bounds are measured as bytes allocated by the whole process during one attempt,
/// which other tests running at the same time would blur.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostileSmtpPeerCollection
{
    public const string Name = "hostile SMTP peers";
}

/// <summary>
/// MX hosts that behave as attackers or broken peers do. Each attempt must end within a small multiple of
/// the configured timeouts, cost bounded memory, fail that host as temporary with a reason that says what
/// went wrong, and go on to the next MX host.
/// </summary>
[Collection(HostileSmtpPeerCollection.Name)]
public class HostileSmtpPeerTests
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(1);

    /// <summary>A generous multiple of the timeouts: a bound on the attempt, not a speed.</summary>
    private static readonly TimeSpan AttemptBound = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Allocation allowed for one attempt against a hostile host (and a good backup): tens of MiB, where a
    /// client buffering what the peer sends allocated hundreds.
    /// </summary>
    private const long AllocationBound = 32L * 1024 * 1024;

    private sealed record Attempt(DeliveryOutcome Outcome, TimeSpan Elapsed, long Allocated);

    private static async Task<Attempt> AttemptAsync(DeliveryEngine engine, DeliveryRequest request)
    {
        // The outer limit only keeps a broken client from hanging the test run; the assertions are the bounds.
        using var runaway = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        GC.Collect();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        var outcome = await engine.DeliverAsync(request, runaway.Token);
        var elapsed = clock.Elapsed;
        return new Attempt(outcome, elapsed, GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore);
    }

    private static async Task<(LoopbackWorld World, LoopbackSmtpServer Hostile, LoopbackSmtpServer Backup)> HostileWithBackupAsync(string domain, SmtpHostility hostility, TimeSpan? interval = null)
    {
        var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx(domain, 10, $"mx1.{domain}").AddMx(domain, 20, $"mx2.{domain}");
        var hostile = await world.AddMxServerAsync($"mx1.{domain}", o =>
        {
            o.Hostility = hostility;
            o.HostileInterval = interval ?? TimeSpan.FromSeconds(1);
        });
        var backup = await world.AddMxServerAsync($"mx2.{domain}");
        return (world, hostile, backup);
    }

    private static void AssertDeliveredViaBackup(Attempt attempt, string domain, LoopbackSmtpServer backup, string reason)
    {
        var result = Assert.Single(attempt.Outcome.Recipients);
        Assert.Equal(RecipientStatus.Delivered, result.Status);
        Assert.Equal($"mx2.{domain}", result.Host);
        Assert.Single(backup.Messages);
        var refused = Assert.Single(attempt.Outcome.Connections, c => c.Host == $"mx1.{domain}");
        Assert.Contains(reason, refused.Error);
    }

    [Fact]
    public async Task A_dripping_mx_is_given_up_at_the_reply_deadline_and_the_backup_delivers()
    {
        // One byte every 200 ms: an idle timeout of 1 s never fires, a deadline for the whole reply does.
        var (world, _, backup) = await HostileWithBackupAsync("drip.example", SmtpHostility.Drip, TimeSpan.FromMilliseconds(200));
        await using var _world = world;
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("drip.example", Message("s@x", "r@drip.example"), recipients: "r@drip.example"));

        AssertDeliveredViaBackup(attempt, "drip.example", backup, "no complete greeting within 1 s");
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
    }

    [Fact]
    public async Task An_endless_ehlo_reply_is_cut_at_the_reply_cap_as_a_temporary_failure()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("endless.example", 10, "mx.endless.example");
        await world.AddMxServerAsync("mx.endless.example", o => o.Hostility = SmtpHostility.EndlessEhloReply);
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("endless.example", Message("s@x", "r@endless.example"), recipients: "r@endless.example"));

        var result = Assert.Single(attempt.Outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Equal("4.4.2", result.Reply.EnhancedCode);
        Assert.Contains("reply to EHLO longer than 65536 bytes", result.Reply.Text);
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
        Assert.True(attempt.Allocated < AllocationBound, $"allocated {attempt.Allocated / 1024 / 1024} MiB");
    }

    [Fact]
    public async Task A_huge_greeting_line_is_cut_at_the_line_cap_and_the_backup_delivers()
    {
        var (world, _, backup) = await HostileWithBackupAsync("huge.example", SmtpHostility.HugeGreetingLine);
        await using var _world = world;
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("huge.example", Message("s@x", "r@huge.example"), recipients: "r@huge.example"));

        AssertDeliveredViaBackup(attempt, "huge.example", backup, "greeting line longer than 4096 bytes");
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
        Assert.True(attempt.Allocated < AllocationBound, $"allocated {attempt.Allocated / 1024 / 1024} MiB");
    }

    [Fact]
    public async Task A_tarpit_is_given_up_at_the_reply_deadline()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("tarpit.example", 10, "mx.tarpit.example");
        await world.AddMxServerAsync("mx.tarpit.example", o =>
        {
            o.Hostility = SmtpHostility.Tarpit;
            o.HostileInterval = TimeSpan.FromSeconds(30);
        });
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("tarpit.example", Message("s@x", "r@tarpit.example"), recipients: "r@tarpit.example"));

        var result = Assert.Single(attempt.Outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("no complete greeting within 1 s", result.Reply.Text);
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
    }

    [Fact]
    public async Task A_session_answered_slowly_but_in_time_ends_at_the_session_deadline()
    {
        // Every reply comes within the 2 s reply deadline, but the session as a whole is slower than its 2 s limit.
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("slow.example", 10, "mx.slow.example");
        await world.AddMxServerAsync("mx.slow.example", o =>
        {
            o.Hostility = SmtpHostility.Tarpit;
            o.HostileInterval = TimeSpan.FromMilliseconds(700);
        });
        using var engine = world.CreateEngine(commandTimeout: TimeSpan.FromSeconds(2), sessionTimeout: TimeSpan.FromSeconds(2));

        var attempt = await AttemptAsync(engine, Request("slow.example", Message("s@x", "r@slow.example"), recipients: "r@slow.example"));

        var result = Assert.Single(attempt.Outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("session limit of 2 s", result.Reply.Text);
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
    }

    [Fact]
    public async Task Garbage_after_starttls_fails_tls_within_the_deadline_and_the_plaintext_retry_delivers()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("garbage.example", 10, "mx.garbage.example");
        var mx = await world.AddMxServerAsync("mx.garbage.example", o => o.Hostility = SmtpHostility.GarbageAfterStartTls);
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("garbage.example", Message("s@x", "r@garbage.example"), recipients: "r@garbage.example"));

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(attempt.Outcome.Recipients).Status);
        Assert.False(Assert.Single(mx.Messages).Tls);
        Assert.Contains("TLS handshake failed", attempt.Outcome.Connections[0].Error);
        Assert.True(attempt.Outcome.Connections[1].PlaintextRetry);
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
    }

    [Fact]
    public async Task Data_to_a_peer_that_stops_reading_is_given_up_at_the_deadline()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("deaf.example", 10, "mx.deaf.example");
        await world.AddMxServerAsync("mx.deaf.example", o => o.Hostility = SmtpHostility.NeverReadData);
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);
        // Larger than any socket buffer on loopback, so the writes block once the peer stops reading.
        var body = string.Concat(Enumerable.Repeat(new string('a', 998) + "\r\n", 32 * 1024));

        var attempt = await AttemptAsync(engine, Request("deaf.example", Message("s@x", "r@deaf.example", body), recipients: "r@deaf.example"));

        var result = Assert.Single(attempt.Outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("within 1 s", result.Reply.Text);
        Assert.True(attempt.Elapsed < AttemptBound, $"took {attempt.Elapsed}");
    }

    [Fact]
    public async Task A_dripping_smarthost_is_a_temporary_failure_at_the_reply_deadline()
    {
        await using var world = await LoopbackWorld.StartAsync();
        await world.AddMxServerAsync("relay.loopback.test", o =>
        {
            o.Credentials = ("app", "secret");
            o.Hostility = SmtpHostility.Drip;
            o.HostileInterval = TimeSpan.FromMilliseconds(200);
        });
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);
        var relay = new SmarthostOptions { Host = "relay.loopback.test", Port = world.SmtpPort, UserName = "app", Password = "secret" };
        var clock = Stopwatch.StartNew();

        var outcome = await engine.DeliverViaSmarthostAsync(Request("anywhere.example", Message("s@x", "r@anywhere.example"), recipients: "r@anywhere.example"), relay, CancellationToken.None);

        var result = Assert.Single(outcome.Recipients);
        Assert.Equal(RecipientStatus.Temporary, result.Status);
        Assert.Contains("no complete greeting within 1 s", result.Reply.Text);
        Assert.True(clock.Elapsed < AttemptBound, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Probe_reports_an_endless_ehlo_reply_within_the_bounds()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("probed.example", 10, "mx.probed.example");
        await world.AddMxServerAsync("mx.probed.example", o => o.Hostility = SmtpHostility.EndlessEhloReply);
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);
        var clock = Stopwatch.StartNew();

        var probe = await new DestinationProbe(engine).ProbeAsync(CloudDelivery.Addressing.Domain.Parse("probed.example"), CancellationToken.None);

        Assert.Contains("reply to EHLO longer than 65536 bytes", Assert.Single(probe.Hosts).Error);
        Assert.True(clock.Elapsed < AttemptBound, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_554_greeting_gets_a_quit_and_the_backup_mx_delivers()
    {
        var (world, hostile, backup) = await HostileWithBackupAsync("refusing.example", SmtpHostility.Greeting554);
        await using var _world = world;
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("refusing.example", Message("s@x", "r@refusing.example"), recipients: "r@refusing.example"));

        AssertDeliveredViaBackup(attempt, "refusing.example", backup, "554");
        // RFC 5321 §3.1: the refusing server waits for QUIT, so it gets one.
        Assert.Equal(1, hostile.QuitCount);
    }

    [Fact]
    public async Task A_554_greeting_from_every_mx_fails_permanently()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("allrefuse.example", 10, "mx1.allrefuse.example").AddMx("allrefuse.example", 20, "mx2.allrefuse.example");
        var first = await world.AddMxServerAsync("mx1.allrefuse.example", o => o.Hostility = SmtpHostility.Greeting554);
        var second = await world.AddMxServerAsync("mx2.allrefuse.example", o => o.Hostility = SmtpHostility.Greeting554);
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("allrefuse.example", Message("s@x", "r@allrefuse.example"), recipients: "r@allrefuse.example"));

        var result = Assert.Single(attempt.Outcome.Recipients);
        Assert.Equal(RecipientStatus.Permanent, result.Status);
        Assert.Equal(554, result.Reply.Code);
        Assert.Equal(1, first.ConnectionCount);
        Assert.Equal(1, second.ConnectionCount);
    }

    [Fact]
    public async Task A_554_greeting_and_a_421_greeting_fail_temporarily()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("mixrefuse.example", 10, "mx1.mixrefuse.example").AddMx("mixrefuse.example", 20, "mx2.mixrefuse.example");
        await world.AddMxServerAsync("mx1.mixrefuse.example", o => o.Hostility = SmtpHostility.Greeting554);
        var second = await world.AddMxServerAsync("mx2.mixrefuse.example", o => o.Hostility = SmtpHostility.Greeting421);
        using var engine = world.CreateEngine(commandTimeout: CommandTimeout);

        var attempt = await AttemptAsync(engine, Request("mixrefuse.example", Message("s@x", "r@mixrefuse.example"), recipients: "r@mixrefuse.example"));

        Assert.Equal(RecipientStatus.Temporary, Assert.Single(attempt.Outcome.Recipients).Status);
        Assert.Equal(1, second.ConnectionCount);
    }
}
