using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Loopback.Smtp;
using MimeKit;

namespace CloudDelivery.Tests.Queue;

[Collection(AzuriteCollection.Name)]
public class OutboundQueueTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Submitted_message_is_delivered_and_its_events_say_so()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("dest.example", 10, "mx.dest.example");
        var mx = await world.Network.AddMxServerAsync("mx.dest.example");

        var submitted = await world.SubmitAsync("sender@sender.example", ["a@dest.example", "b@dest.example"]);
        await world.DrainAsync();

        var message = Assert.Single(mx.Messages);
        Assert.Equal(["a@dest.example", "b@dest.example"], message.Recipients);
        foreach (var recipient in submitted.Recipients)
        {
            var record = await world.Queue.FindAsync(recipient.Id, CancellationToken.None);
            Assert.Equal(RecipientState.Delivered, record!.State);
            Assert.Equal(["queued", "delivered"], record.EventList.Select(e => e.Type));
        }
    }

    [Fact]
    public async Task Temporary_failure_is_retried_on_schedule_and_then_delivered()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("retry.example", 10, "mx.retry.example");
        var refuse = true;
        var mx = await world.Network.AddMxServerAsync("mx.retry.example", o => o.OnRcpt = _ => refuse ? new SmtpServerReply(451, "4.3.0", "try again later") : null);
        var submitted = await world.SubmitAsync("sender@sender.example", ["r@retry.example"]);

        await world.DrainAsync();
        var record = await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None);
        Assert.Equal(RecipientState.Queued, record!.State);
        Assert.Equal(1, record.Attempts);
        Assert.Equal(world.Time.GetUtcNow() + TimeSpan.FromSeconds(450), record.NextAttemptAt);

        // Not yet due: a wake-up finds nothing to do.
        await world.Queue.WakeAsync("retry.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();
        Assert.Equal(1, (await world.Queue.FindAsync(record.Id, CancellationToken.None))!.Attempts);

        refuse = false;
        world.Time.Advance(TimeSpan.FromMinutes(8));
        await world.Queue.WakeAsync("retry.example", TimeSpan.Zero, CancellationToken.None);
        await world.DrainAsync();

        record = await world.Queue.FindAsync(record.Id, CancellationToken.None);
        Assert.Equal(RecipientState.Delivered, record!.State);
        Assert.Equal(2, record.Attempts);
        Assert.Single(mx.Messages);
        Assert.Equal(["queued", "delayed", "delivered"], record.EventList.Select(e => e.Type));
    }

    [Fact]
    public async Task Permanent_failure_sends_a_dsn_to_the_sender_which_is_delivered_too()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("dest.example", 10, "mx.dest.example").AddMx("sender.example", 10, "mx.sender.example");
        await world.Network.AddMxServerAsync("mx.dest.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.1.1", "no such user"));
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");

        var submitted = await world.SubmitAsync("sender@sender.example", ["gone@dest.example"]);
        await world.DrainAsync();

        Assert.Equal(RecipientState.Failed, (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!.State);
        var dsn = Assert.Single(senderMx.Messages);
        Assert.Equal(string.Empty, dsn.MailFrom);
        Assert.Equal(["sender@sender.example"], dsn.Recipients);
        var parsed = MimeMessage.Load(new MemoryStream(dsn.Data));
        var report = Assert.IsType<MultipartReport>(parsed.Body);
        Assert.Equal("delivery-status", report.ReportType);
        using var statusBytes = new MemoryStream();
        ((MimePart)report[1]).Content!.DecodeTo(statusBytes);
        var status = Encoding.UTF8.GetString(statusBytes.ToArray());
        Assert.Contains("Final-Recipient: rfc822; gone@dest.example", status, StringComparison.Ordinal);
        Assert.Contains("Action: failed", status, StringComparison.Ordinal);
        Assert.Contains("Status: 5.1.1", status, StringComparison.Ordinal);
        Assert.Contains("Diagnostic-Code: smtp; 550 5.1.1 no such user", status, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Giving_up_after_the_schedule_expires_the_recipient_with_delay_and_failure_dsns()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("down.example", 10, "mx.down.example").AddMx("sender.example", 10, "mx.sender.example");
        await world.Network.AddMxServerAsync("mx.down.example", o => o.OnRcpt = _ => new SmtpServerReply(451, "4.4.1", "overloaded"));
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");
        var submitted = await world.SubmitAsync("sender@sender.example", ["r@down.example"]);

        for (var attempt = 0; attempt < 8; attempt++)
        {
            await world.Queue.WakeAsync("down.example", TimeSpan.Zero, CancellationToken.None);
            await world.DrainAsync();
            world.Time.Advance(TimeSpan.FromDays(1));
        }

        var record = await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None);
        Assert.Equal(RecipientState.Expired, record!.State);
        Assert.Equal(8, record.Attempts);
        var actions = senderMx.Messages.Select(m => Encoding.UTF8.GetString(m.Data)).Select(t => t.Contains("Action: delayed", StringComparison.Ordinal) ? "delayed" : "failed").ToArray();
        Assert.Equal(["delayed", "failed"], actions);
    }

    [Fact]
    public async Task Requiretls_failure_bounces_with_5_7_30()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("plain.example", 10, "mx.plain.example").AddMx("sender.example", 10, "mx.sender.example");
        await world.Network.AddMxServerAsync("mx.plain.example");
        var senderMx = await world.Network.AddMxServerAsync("mx.sender.example");

        var submitted = await world.SubmitAsync("sender@sender.example", ["r@plain.example"], requireTls: true);
        await world.DrainAsync();

        var record = await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None);
        Assert.Equal(RecipientState.Failed, record!.State);
        Assert.Equal("5.7.30", record.LastEnhancedCode);
        Assert.Contains("Status: 5.7.30", Encoding.UTF8.GetString(Assert.Single(senderMx.Messages).Data), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_hundred_recipients_in_twenty_domains_go_out_in_one_transaction_per_domain()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var servers = new List<LoopbackSmtpServer>();
        for (var d = 0; d < 20; d++)
        {
            world.Network.Zone.AddMx($"d{d}.example", 10, $"mx.d{d}.example");
            servers.Add(await world.Network.AddMxServerAsync($"mx.d{d}.example"));
        }
        var recipients = Enumerable.Range(0, 200).Select(i => $"user{i}@d{i % 20}.example").ToArray();

        var submitted = await world.SubmitAsync("sender@sender.example", recipients);
        await world.DrainAsync();

        Assert.Equal(200, submitted.Recipients.Count);
        Assert.All(servers, s => Assert.Equal(1, s.TransactionCount));
        Assert.All(servers, s => Assert.Equal(10, Assert.Single(s.Messages).Recipients.Count));
    }

    [Fact]
    public async Task Two_workers_racing_on_one_domain_deliver_each_recipient_once()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("race.example", 10, "mx.race.example");
        var mx = await world.Network.AddMxServerAsync("mx.race.example");
        for (var i = 0; i < 10; i++)
        {
            await world.SubmitAsync("sender@sender.example", [$"r{i}@race.example"], $"Subject: {i}\r\n\r\nbody {i}\r\n");
        }

        var wakeUp = new WakeUp("race.example");
        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => world.Handler.HandleAsync(wakeUp, CancellationToken.None))));
        await world.DrainAsync();

        Assert.Equal(10, mx.Messages.Sum(m => m.Recipients.Count));
        Assert.Equal(10, mx.Messages.SelectMany(m => m.Recipients).Distinct().Count());
        Assert.Contains(runs, r => r.Busy);
        // A busy domain's wake-up asks the holder to run again, or comes back in seconds, never after the whole lease.
        Assert.All(runs.Where(r => r.Busy), r => Assert.True(r.RetryAt is null || r.RetryAt <= world.Time.GetUtcNow() + TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_wake_up_for_a_busy_domain_makes_the_holder_run_again_without_a_delayed_wake_up()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("rerun.example", 10, "mx.rerun.example");
        var mx = await world.Network.AddMxServerAsync("mx.rerun.example");
        await world.SubmitAsync("sender@sender.example", ["first@rerun.example"], "Subject: 1\r\n\r\none\r\n");
        await world.Storage.WakeUps.ClearMessagesAsync();
        DomainRunResult? second = null;
        world.Handler.AfterResultsSaved = async () =>
        {
            // While the first run holds the domain (after its ready records were read), another message
            // arrives and its wake-up is handled by a second worker.
            world.Handler.AfterResultsSaved = null;
            await world.SubmitAsync("sender@sender.example", ["second@rerun.example"], "Subject: 2\r\n\r\ntwo\r\n");
            await world.Storage.WakeUps.ClearMessagesAsync();
            second = await world.Handler.HandleAsync(new WakeUp("rerun.example"), CancellationToken.None);
        };

        var first = await world.Handler.HandleAsync(new WakeUp("rerun.example"), CancellationToken.None);

        Assert.True(second!.Busy);
        Assert.Null(second.RetryAt);
        Assert.Equal(2, first.Delivered);
        Assert.Equal(["first@rerun.example", "second@rerun.example"], mx.Messages.SelectMany(m => m.Recipients).Order(StringComparer.Ordinal));
        Assert.Equal(0, (await world.Storage.WakeUps.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        // The domain is free again.
        var (lease, _, _) = await DomainLease.TryAcquireAsync(world.Storage.Recipients, world.Time, "rerun.example", TimeSpan.FromMinutes(1), CancellationToken.None);
        Assert.NotNull(lease);
    }

    [Fact]
    public async Task A_lease_released_by_a_worker_whose_clock_is_ahead_is_free_not_busy()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("skew.example", 10, "mx.skew.example");
        var mx = await world.Network.AddMxServerAsync("mx.skew.example");
        await world.SubmitAsync("sender@sender.example", ["r@skew.example"]);
        await world.Storage.WakeUps.ClearMessagesAsync();
        // Another instance, its clock 20 s ahead of ours, released the domain a moment ago: no owner,
        // and an end that is still in the future by our clock.
        await world.Storage.Recipients.UpsertEntityAsync(
            new global::Azure.Data.Tables.TableEntity("skew.example", RecipientRecord.LeaseRowKey) { ["Owner"] = string.Empty, ["Until"] = world.Time.GetUtcNow() + TimeSpan.FromSeconds(20) },
            global::Azure.Data.Tables.TableUpdateMode.Replace);

        var run = await world.Handler.HandleAsync(new WakeUp("skew.example"), CancellationToken.None);

        // Nobody holds the domain: asking "the holder" to rerun would leave the record waiting for the sweeper.
        Assert.False(run.Busy);
        Assert.Equal(1, run.Delivered);
        Assert.Single(mx.Messages);
    }

    [Fact]
    public async Task State_updates_keep_the_envelope_and_inline_body_and_clear_absent_results()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var submitted = await world.SubmitAsync("sender@sender.example", ["r@state.example"], "Subject: s\r\n\r\nthe body\r\n");
        var record = (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!;

        record.Attempts = 1;
        record.LastCode = 451;
        record.LastEnhancedCode = "4.3.0";
        record.LastHost = "mx.state.example";
        await world.Queue.SaveAsync([record]);
        record.Attempts = 2;
        record.LastCode = 421;
        record.LastEnhancedCode = null;
        record.LastHost = null;
        await world.Queue.SaveAsync([record]);

        var stored = (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!;
        Assert.Equal((2, 421), (stored.Attempts, stored.LastCode));
        Assert.Null(stored.LastEnhancedCode);
        Assert.Null(stored.LastHost);
        Assert.Equal("sender@sender.example", stored.Sender);
        var body = await world.Queue.BodyOfAsync(stored, [], CancellationToken.None);
        using var reader = new StreamReader(body.OpenRead());
        Assert.Equal("Subject: s\r\n\r\nthe body\r\n", await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task A_domain_with_more_ready_records_than_one_run_takes_is_served_in_several_runs_under_one_lease()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("many.example", 10, "mx.many.example");
        var mx = await world.Network.AddMxServerAsync("mx.many.example");
        var queue = new OutboundQueue(world.Storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero, MaxRecordsPerRun = 3 }, world.Time);
        var handler = new DomainDeliveryHandler(queue, world.Engine, "mta.loopback.test");
        for (var i = 0; i < 7; i++)
        {
            await queue.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = [$"r{i}@many.example"], Message = new MemoryStream(Encoding.ASCII.GetBytes($"Subject: {i}\r\n\r\nbody {i}\r\n")) }, CancellationToken.None);
        }
        await world.Storage.WakeUps.ClearMessagesAsync();

        var result = await handler.HandleAsync(new WakeUp("many.example"), CancellationToken.None);

        // Three runs (3 + 3 + 1, one connection each) in one invocation; nothing left for a later wake-up.
        Assert.Equal(7, result.Delivered);
        Assert.Equal(7, mx.Messages.Count);
        Assert.Equal(3, mx.ConnectionCount);
        Assert.Equal(0, (await world.Storage.WakeUps.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        Assert.Empty(await queue.ReadyAsync("many.example", CancellationToken.None));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"domain\": \"\"}")]
    [InlineData("{\"domain\": \"a/b\"}")]
    public void Malformed_wake_ups_are_refused(string text) => Assert.Throws<FormatException>(() => WakeUp.Parse(text));

    [Fact]
    public async Task Bad_submissions_are_refused_and_store_nothing()
    {
        await using var world = await QueueWorld.StartAsync(azurite);

        var badRecipient = await Assert.ThrowsAsync<SubmissionException>(() => world.SubmitAsync("s@sender.example", ["bad\r\nRCPT TO:<x@y>"]));
        var empty = await Assert.ThrowsAsync<SubmissionException>(() => world.SubmitAsync("s@sender.example", ["r@dest.example"], string.Empty));

        Assert.Equal(SubmissionError.InvalidRecipient, badRecipient.Error);
        Assert.Equal(SubmissionError.EmptyMessage, empty.Error);
        await foreach (var _ in world.Storage.Recipients.QueryAsync<RecipientRecord>())
        {
            Assert.Fail("a record was stored");
        }
    }
}

[Collection(AzuriteCollection.Name)]
public class LargeMessageTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Thirty_megabyte_message_is_streamed_through_storage_and_delivered_whole()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("big.example", 10, "mx.big.example");
        long received = -1;
        await world.Network.AddMxServerAsync("mx.big.example", o =>
        {
            o.KeepMessages = false;
            o.OnDataEnd = context =>
            {
                received = context.Size;
                return null;
            };
        });
        // 30 MiB of 76-character lines, generated as it is read: never all in memory on the way in.
        const long size = 30L * 1024 * 1024;
        var header = "From: <s@sender.example>\r\nTo: <r@big.example>\r\nSubject: big\r\n\r\n"u8.ToArray();
        var line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123\r\n"u8.ToArray();
        await using var body = new GeneratedStream(header, line, size);

        var submitted = await world.Queue.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = ["r@big.example"], Message = body }, CancellationToken.None);
        await world.DrainAsync();

        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(submitted.Recipients[0].Id, CancellationToken.None))!.State);
        Assert.Equal(submitted.Size, received);
        Assert.True(submitted.Size >= size);
    }

    /// <summary>A read-only stream of a header and a repeated line, up to a length.</summary>
    private sealed class GeneratedStream(byte[] header, byte[] line, long length) : Stream
    {
        private long position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = 0;
            while (n < count && position < length)
            {
                buffer[offset + n++] = position < header.Length ? header[position] : line[(position - header.Length) % line.Length];
                position++;
            }
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

[Collection(AzuriteCollection.Name)]
public class WakeUpWindowTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_lone_message_wakes_its_domain_at_once_and_a_burst_shares_one_trailing_wake_up()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("burst.example", 10, "mx.burst.example");
        var mx = await world.Network.AddMxServerAsync("mx.burst.example");
        var queue = new OutboundQueue(world.Storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.FromSeconds(3) });
        for (var i = 0; i < 10; i++)
        {
            await queue.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = [$"r{i}@burst.example"], Message = new MemoryStream(Encoding.ASCII.GetBytes($"Subject: {i}\r\n\r\nbody\r\n")) }, CancellationToken.None);
        }
        world.Time.Advance(TimeSpan.FromMinutes(1)); // the handler's clock must see the records as due

        // Two wake-ups in all: the first at once (visible now), the trailing one when the window ends.
        Assert.Equal(2, (await world.Storage.WakeUps.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        var immediate = await world.DrainAsync();
        await Task.Delay(TimeSpan.FromSeconds(3.5));
        var trailing = await world.DrainAsync();

        Assert.Single(immediate);
        Assert.Single(trailing);
        Assert.Equal(10, immediate[0].Delivered + trailing[0].Delivered);
        Assert.Equal(10, mx.TransactionCount);
    }

    [Fact]
    public async Task A_continuing_burst_is_woken_once_per_window_and_a_message_after_a_pause_at_once()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var queue = new OutboundQueue(world.Storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.FromSeconds(30) }, world.Time);
        async Task SubmitAsync() => await queue.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = ["r@stream.example"], Message = new MemoryStream("Subject: s\r\n\r\nbody\r\n"u8.ToArray()) }, CancellationToken.None);
        async Task<(int All, int Visible)> WakeUpsAsync() => ((await world.Storage.WakeUps.GetPropertiesAsync()).Value.ApproximateMessagesCount, (await world.Storage.WakeUps.PeekMessagesAsync(32)).Value.Length);

        await SubmitAsync();                              // after a pause: at once
        world.Time.Advance(TimeSpan.FromSeconds(1));
        await SubmitAsync();                              // same window: the trailing wake-up
        world.Time.Advance(TimeSpan.FromSeconds(30));
        await SubmitAsync();                              // next window, burst goes on: only at its end
        Assert.Equal((3, 1), await WakeUpsAsync());

        world.Time.Advance(TimeSpan.FromMinutes(5));
        await SubmitAsync();                              // after a pause again: at once
        Assert.Equal((4, 2), await WakeUpsAsync());
    }
}

public class DsnComposerTests
{
    [Fact]
    public void Dsn_for_an_internationalised_recipient_uses_the_rfc_6533_types()
    {
        var original = new MemoryStream(Encoding.UTF8.GetBytes("From: <sender@example.com>\r\nMessage-ID: <orig@example.com>\r\nSubject: hi\r\n\r\nbody\r\n"));

        var (bytes, needsSmtpUtf8) = CloudDelivery.Dsn.DsnComposer.Compose(
            "mta.example.net",
            CloudDelivery.Addressing.EmailAddress.Parse("sender@example.com"),
            original,
            DateTimeOffset.UtcNow,
            [new CloudDelivery.Dsn.DsnRecipient(CloudDelivery.Addressing.EmailAddress.Parse("jöran@bücher.example"), false, new CloudDelivery.Smtp.SmtpReply(550, "5.1.1", "unknown"), "mx.bücher.example", DateTimeOffset.UtcNow)],
            DateTimeOffset.UtcNow);

        var text = Encoding.UTF8.GetString(bytes);
        Assert.True(needsSmtpUtf8);
        Assert.Contains("message/global-delivery-status", text, StringComparison.Ordinal);
        Assert.Contains("Final-Recipient: utf-8; jöran@bücher.example", text, StringComparison.Ordinal);
        Assert.Contains("message/global-headers", text, StringComparison.Ordinal);
        var parsed = MimeMessage.Load(new MemoryStream(bytes));
        Assert.Equal("<orig@example.com>", "<" + parsed.InReplyTo + ">");
        Assert.Equal("auto-replied", parsed.Headers["Auto-Submitted"]);
    }
}
