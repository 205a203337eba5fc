using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Cli;
using CloudDelivery.Tests.MtaSts;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Cli;

/// <summary>
/// The operator's queue verbs (list, show, hold, release, retry, fail, drop, status --watch, completion)
/// through the command line against Azurite, with their --json output parsed as a script would.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class QueueOperatorCliTests(AzuriteFixture azurite)
{
    private sealed record Run(int Exit, string Output, string Error, byte[] Raw)
    {
        public JsonElement Json => JsonDocument.Parse(Output).RootElement;
    }

    private static async Task<Run> RunAsync(QueueWorld world, string[] args, TextReader? input = null)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var raw = new MemoryStream();
        string[] service =
        [
            "--storage", world.Storage.Options.ConnectionString!,
            "--set", $"CloudDelivery:Storage:RecipientsTable={world.Storage.Options.RecipientsTable}",
            "--set", $"CloudDelivery:Storage:BodiesContainer={world.Storage.Options.BodiesContainer}",
            "--set", $"CloudDelivery:Storage:WakeUpQueue={world.Storage.Options.WakeUpQueue}",
            "--set", $"CloudDelivery:Storage:PoisonQueue={world.Storage.Options.PoisonQueue}",
            "--set", $"CloudDelivery:Storage:SuppressionsTable={world.Storage.Options.SuppressionsTable}",
            "--set", "CloudDelivery:Hostname=mta.cli.test",
        ];
        var exit = await CliApplication.RunAsync([.. args, .. service], output, error, input, () => raw);
        return new Run(exit, output.ToString(), error.ToString(), raw.ToArray());
    }

    private static string[] Ids(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetProperty("id").GetString()!)];

    private static async Task<RecipientRecord> RecordAsync(QueueWorld world, string id) => (await world.Queue.FindAsync(id, CancellationToken.None))!;

    private static async Task<int> VisibleWakeUpsAsync(QueueWorld world, string domain) =>
        (await world.Storage.WakeUps.PeekMessagesAsync(32)).Value.Count(m => m.Body.ToString().Contains(domain, StringComparison.Ordinal));

    [Fact]
    public async Task List_filters_by_domain_sender_state_age_and_tag_and_never_reads_rows_past_the_records()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        // Three hours ago, on a clock of its own: the age filters compare submission times with now.
        var past = new OutboundQueue(world.Storage, world.Queue.Options, new ManualTimeProvider(DateTimeOffset.UtcNow - TimeSpan.FromHours(3)));
        var old = await past.SubmitAsync(new SubmissionRequest { Sender = "a@sender.example", Recipients = ["old@list.example"], Message = new MemoryStream("Subject: old\r\n\r\nx\r\n"u8.ToArray()) }, CancellationToken.None);
        var tagged = await world.Queue.SubmitAsync(new SubmissionRequest { Sender = "b@sender.example", Recipients = ["new@list.example", "other@elsewhere.example"], Message = new MemoryStream("Subject: new\r\n\r\nx\r\n"u8.ToArray()), Tags = new Dictionary<string, string> { ["campaign"] = "spring" } }, CancellationToken.None);
        var oldId = old.Recipients[0].Id;
        var newId = tagged.Recipients.Single(r => r.Recipient == "new@list.example").Id;
        var elsewhereId = tagged.Recipients.Single(r => r.Recipient == "other@elsewhere.example").Id;
        // Rows above the records' keys (lease, outbox, the domain's TLS row) look like records to a careless query.
        await world.Storage.Recipients.AddEntityAsync(new TableEntity("list.example", "~tls") { ["State"] = "queued", ["Sender"] = "a@sender.example", ["SubmittedAt"] = DateTimeOffset.UtcNow });
        Assert.Equal(0, (await RunAsync(world, ["queue", "drop", elsewhereId])).Exit);

        var all = await RunAsync(world, ["queue", "list", "--json"]);
        Assert.Equal(0, all.Exit);
        Assert.Equal([oldId, newId], Ids(all.Json).Order(StringComparer.Ordinal));
        var first = all.Json.EnumerateArray().Single(e => e.GetProperty("id").GetString() == newId);
        Assert.Equal(tagged.MessageId, first.GetProperty("messageId").GetString());
        Assert.Equal("b@sender.example", first.GetProperty("sender").GetString());
        Assert.Equal("new@list.example", first.GetProperty("recipient").GetString());
        Assert.Equal("queued", first.GetProperty("state").GetString());
        Assert.Equal(0, first.GetProperty("attempts").GetInt32());
        Assert.Equal("spring", first.GetProperty("tags").GetProperty("campaign").GetString());
        Assert.NotEqual(JsonValueKind.Null, first.GetProperty("nextAttemptAt").ValueKind);

        Assert.Equal([oldId, newId], Ids((await RunAsync(world, ["queue", "list", "--domain", "LIST.example", "--json"])).Json).Order(StringComparer.Ordinal));
        Assert.Equal([oldId], Ids((await RunAsync(world, ["queue", "list", "--sender", "a@sender.example", "--json"])).Json));
        Assert.Equal([oldId], Ids((await RunAsync(world, ["queue", "list", "--older-than", "1h", "--json"])).Json));
        Assert.Equal([newId], Ids((await RunAsync(world, ["queue", "list", "--newer-than", "1h", "--json"])).Json));
        Assert.Equal([newId], Ids((await RunAsync(world, ["queue", "list", "--tag", "campaign=spring", "--json"])).Json));
        Assert.Equal([elsewhereId], Ids((await RunAsync(world, ["queue", "list", "--state", "dropped", "--json"])).Json));
        Assert.Equal(3, (await RunAsync(world, ["queue", "list", "--state", "all", "--json"])).Json.GetArrayLength());
        Assert.Empty(Ids((await RunAsync(world, ["queue", "list", "--domain", "nothing.example", "--json"])).Json));
        Assert.DoesNotContain("~", (await RunAsync(world, ["queue", "list", "--state", "all"])).Output, StringComparison.Ordinal);

        var badAge = await RunAsync(world, ["queue", "list", "--older-than", "30"]);
        Assert.NotEqual(0, badAge.Exit);
        Assert.Contains("not a duration", badAge.Error + badAge.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Show_prints_envelope_headers_and_events_and_body_streams_the_stored_bytes()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        // Two domains: the body goes to a blob (one domain and small would keep it inline); both are read.
        var message = Encoding.UTF8.GetBytes("From: <s@sender.example>\r\nSubject: Grüße\r\n =?utf-8?q?folded?=\r\nX-Long: " + new string('x', 300) + "\r\n\r\nbody line\r\n" + new string('y', 70_000) + "\r\n");
        var blob = await world.Queue.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = ["r@show.example", "r@show2.example"], Message = new MemoryStream(message) }, CancellationToken.None);
        var inline = await world.SubmitAsync("s@sender.example", ["i@show.example"], "Subject: small\r\n\r\nsmall body\r\n");

        var shown = await RunAsync(world, ["queue", "show", blob.MessageId, "--json"]);
        Assert.Equal(0, shown.Exit);
        var json = shown.Json;
        Assert.Equal(blob.MessageId, json.GetProperty("messageId").GetString());
        Assert.Equal("s@sender.example", json.GetProperty("sender").GetString());
        Assert.Equal(message.Length, json.GetProperty("size").GetInt64());
        var headers = json.GetProperty("headers").EnumerateArray().ToDictionary(h => h.GetProperty("name").GetString()!, h => h.GetProperty("value").GetString()!);
        Assert.StartsWith("Grüße", headers["Subject"], StringComparison.Ordinal);
        Assert.Equal(new string('x', 300), headers["X-Long"]);
        var recipients = json.GetProperty("recipients").EnumerateArray().ToList();
        Assert.Equal(2, recipients.Count);
        Assert.Equal("queued", recipients[0].GetProperty("events")[0].GetProperty("type").GetString());

        var text = await RunAsync(world, ["queue", "show", inline.Recipients[0].Id]);
        Assert.Contains("Subject: small", text.Output, StringComparison.Ordinal);
        Assert.Contains("i@show.example", text.Output, StringComparison.Ordinal);

        Assert.Equal(message, (await RunAsync(world, ["queue", "show", blob.Recipients[1].Id, "--body"])).Raw);
        Assert.Equal("Subject: small\r\n\r\nsmall body\r\n"u8.ToArray(), (await RunAsync(world, ["queue", "show", inline.MessageId, "--body"])).Raw);
        Assert.Equal(1, (await RunAsync(world, ["queue", "show", "show.example/0123456789abcdef0123456789abcdef.0000"])).Exit);
    }

    [Fact]
    public async Task Held_recipient_is_not_delivered_nor_purged_until_released_then_it_is_delivered()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("hold.example", 10, "mx.hold.example");
        var mx = await world.Network.AddMxServerAsync("mx.hold.example");
        var submitted = await world.SubmitAsync("s@sender.example", ["r@hold.example"]);
        var id = submitted.Recipients[0].Id;

        var held = await RunAsync(world, ["queue", "hold", id, "--json"]);
        Assert.Equal(0, held.Exit);
        Assert.Equal([id], held.Json.GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        var again = await RunAsync(world, ["queue", "hold", id, "--json"]);
        Assert.Equal("already held", again.Json.GetProperty("skipped")[0].GetProperty("reason").GetString());

        // The submission's wake-up runs, the sweeper looks, days pass and the purge runs: nothing touches it.
        world.Time.Advance(TimeSpan.FromMinutes(1));
        await world.DrainAsync();
        Assert.Empty(mx.Messages);
        Assert.DoesNotContain("hold.example", await world.Queue.DomainsDueAsync(world.Time.GetUtcNow(), CancellationToken.None));
        world.Time.Advance(TimeSpan.FromDays(30));
        await new QueuePurger(world.Queue).PurgeAsync(CancellationToken.None);
        var record = await RecordAsync(world, id);
        Assert.Equal(RecipientState.Held, record.State);
        Assert.Equal(0, record.Attempts);
        Assert.Equal("held", record.EventList[^1].Type);

        var released = await RunAsync(world, ["queue", "release", id, "--json"]);
        Assert.Equal([id], released.Json.GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(1, await VisibleWakeUpsAsync(world, "hold.example"));
        await world.DrainAsync();

        Assert.Single(mx.Messages);
        record = await RecordAsync(world, id);
        Assert.Equal(RecipientState.Delivered, record.State);
        Assert.Equal(["queued", "held", "released", "delivered"], record.EventList.Select(e => e.Type));
    }

    [Fact]
    public async Task Retry_by_domain_and_all_makes_queued_recipients_due_now_and_wakes_their_domains()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var a = (await world.SubmitAsync("s@sender.example", ["r@retry-a.example"])).Recipients[0].Id;
        var b = (await world.SubmitAsync("s@sender.example", ["r@retry-b.example"])).Recipients[0].Id;
        await world.Storage.WakeUps.ClearMessagesAsync();
        var later = DateTimeOffset.UtcNow + TimeSpan.FromHours(4);
        foreach (var id in new[] { a, b })
        {
            var record = await RecordAsync(world, id);
            record.Attempts = 3;
            record.NextAttemptAt = later;
            record.AddEvent(DateTimeOffset.UtcNow, "delayed", "attempt 3: 451 try later");
            await world.Queue.SaveAsync([record]);
        }

        var byDomain = await RunAsync(world, ["queue", "retry", "--domain", "retry-a.example", "--yes", "--json"]);
        Assert.Equal(0, byDomain.Exit);
        Assert.Equal([a], byDomain.Json.GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        Assert.True((await RecordAsync(world, a)).NextAttemptAt <= DateTimeOffset.UtcNow);
        Assert.True((await RecordAsync(world, b)).NextAttemptAt > DateTimeOffset.UtcNow + TimeSpan.FromHours(3));
        Assert.Equal(3, (await RecordAsync(world, a)).Attempts);
        Assert.Equal(1, await VisibleWakeUpsAsync(world, "retry-a.example"));

        var everything = await RunAsync(world, ["queue", "retry", "--all", "--yes", "--json"]);
        Assert.Equal(2, everything.Json.GetProperty("changed").GetArrayLength());
        Assert.True((await RecordAsync(world, b)).NextAttemptAt <= DateTimeOffset.UtcNow);
        Assert.Equal(1, await VisibleWakeUpsAsync(world, "retry-b.example"));
    }

    [Fact]
    public async Task Fail_bounces_with_a_dsn_to_the_sender_and_drop_sends_none()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var submitted = await world.SubmitAsync("s@sender.example", ["one@fail.example", "two@fail.example"]);
        var (one, two) = (submitted.Recipients[0].Id, submitted.Recipients[1].Id);

        var failed = await RunAsync(world, ["queue", "fail", one, "--json"]);
        Assert.Equal(0, failed.Exit);
        Assert.Equal([one], failed.Json.GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        var record = await RecordAsync(world, one);
        Assert.Equal(RecipientState.Failed, record.State);
        Assert.Equal(("failed", "failed by an operator"), (record.EventList[^1].Type, record.EventList[^1].Detail));
        var dsn = Assert.Single(world.Storage.Recipients.Query<RecipientRecord>(r => r.PartitionKey == "sender.example"));
        Assert.True(dsn.IsDsn);
        Assert.Equal("s@sender.example", dsn.Recipient);
        Assert.Equal(string.Empty, dsn.Sender);
        var dsnBody = Encoding.UTF8.GetString((await RunAsync(world, ["queue", "show", dsn.Id, "--body"])).Raw);
        Assert.Contains("one@fail.example", dsnBody, StringComparison.Ordinal);
        Assert.Contains("failed by an operator", dsnBody, StringComparison.Ordinal);
        Assert.Contains("Reporting-MTA: dns; mta.cli.test", dsnBody, StringComparison.Ordinal);

        var dropped = await RunAsync(world, ["queue", "drop", two, "--json"]);
        Assert.Equal([two], dropped.Json.GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(RecipientState.Dropped, (await RecordAsync(world, two)).State);
        Assert.Single(world.Storage.Recipients.Query<RecipientRecord>(r => r.PartitionKey == "sender.example"));

        // The message again: both are final now, so both are skipped with their state, and that is no error.
        var skipped = await RunAsync(world, ["queue", "fail", submitted.MessageId, "--json"]);
        Assert.Equal(0, skipped.Exit);
        Assert.Empty(skipped.Json.GetProperty("changed").EnumerateArray());
        Assert.Equal(["dropped, not queued", "failed, not queued"], skipped.Json.GetProperty("skipped").EnumerateArray().Select(s => s.GetProperty("reason").GetString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Bulk_action_asks_first_refuses_without_a_terminal_and_acts_with_yes()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var ids = (await world.SubmitAsync("s@sender.example", ["a@bulk.example", "b@bulk.example"])).Recipients.Select(r => r.Id).ToArray();
        var other = (await world.SubmitAsync("s@sender.example", ["c@bulk-other.example"])).Recipients[0].Id;

        var refused = await RunAsync(world, ["queue", "hold", "--domain", "bulk.example"], input: null);
        Assert.Equal(CliApplication.ExitUsage, refused.Exit);
        Assert.Contains("pass --yes", refused.Error, StringComparison.Ordinal);
        var closed = await RunAsync(world, ["queue", "hold", "--domain", "bulk.example"], input: new StringReader(string.Empty));
        Assert.Equal(CliApplication.ExitUsage, closed.Exit);
        var declined = await RunAsync(world, ["queue", "hold", "--domain", "bulk.example"], input: new StringReader("n\n"));
        Assert.Equal(1, declined.Exit);
        Assert.Contains("hold 2 recipient(s) of bulk.example? [y/N]", declined.Error, StringComparison.Ordinal);
        foreach (var id in ids)
        {
            Assert.Equal(RecipientState.Queued, (await RecordAsync(world, id)).State);
        }

        var confirmed = await RunAsync(world, ["queue", "hold", "--domain", "bulk.example"], input: new StringReader("y\n"));
        Assert.Equal(0, confirmed.Exit);
        Assert.Contains("2 recipient(s) held", confirmed.Output, StringComparison.Ordinal);
        var released = await RunAsync(world, ["queue", "release", "--sender", "s@sender.example", "--yes", "--json"]);
        Assert.Equal(ids.Order(StringComparer.Ordinal), released.Json.GetProperty("changed").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal));
        var dropped = await RunAsync(world, ["queue", "drop", "--domain", "bulk.example", "--yes", "--json"]);
        Assert.Equal(2, dropped.Json.GetProperty("changed").GetArrayLength());
        Assert.Equal(RecipientState.Queued, (await RecordAsync(world, other)).State);

        Assert.Equal(CliApplication.ExitUsage, (await RunAsync(world, ["queue", "drop", other, "--domain", "bulk.example", "--yes"])).Exit);
        Assert.Equal(CliApplication.ExitUsage, (await RunAsync(world, ["queue", "drop"])).Exit);
    }

    [Fact]
    public async Task Send_json_and_status_watch_print_parseable_documents()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, "Subject: watch\r\n\r\nbody\r\n");
        try
        {
            var sent = await RunAsync(world, ["send", "--from", "s@sender.example", "--to", "r@watch.example", "--message", file, "--json"]);
            Assert.Equal(0, sent.Exit);
            var recipientId = sent.Json.GetProperty("recipients")[0].GetProperty("id").GetString()!;
            Assert.Equal("queued", sent.Json.GetProperty("recipients")[0].GetProperty("status").GetString());

            var watched = await RunAsync(world, ["status", "--watch", "--json", "--interval", "1s", "--iterations", "2"]);
            Assert.Equal(0, watched.Exit);
            var lines = watched.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, lines.Length);
            Assert.All(lines, line => Assert.Equal(1, JsonDocument.Parse(line).RootElement.GetProperty("queued").GetInt32()));

            var one = await RunAsync(world, ["status", recipientId, "--watch", "--json", "--interval", "1s", "--iterations", "2"]);
            Assert.All(one.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries), line => Assert.Equal(recipientId, JsonDocument.Parse(line).RootElement[0].GetProperty("id").GetString()));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Poison_and_suppression_changes_print_json_too()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        await world.Storage.Poison.SendMessageAsync(new Azure.WakeUps.WakeUp("stuck.example").ToJson());

        var poison = await RunAsync(world, ["queue", "poison", "--json"]);
        Assert.Equal(1, poison.Json.GetProperty("count").GetInt32());
        Assert.Equal("wake-up for stuck.example", poison.Json.GetProperty("oldest")[0].GetProperty("description").GetString());
        var requeued = await RunAsync(world, ["queue", "poison", "--requeue", "--json"]);
        Assert.Equal(1, requeued.Json.GetProperty("requeued").GetInt32());

        var added = await RunAsync(world, ["suppressions", "add", "gone@json.example", "--reason", "test", "--json"]);
        Assert.Equal(0, added.Exit);
        Assert.Equal(JsonValueKind.Object, added.Json.ValueKind);
        var removed = await RunAsync(world, ["suppressions", "remove", "gone@json.example", "--json"]);
        Assert.True(removed.Json.GetProperty("removed").GetBoolean());
        var again = await RunAsync(world, ["suppressions", "remove", "gone@json.example", "--json"]);
        Assert.Equal(1, again.Exit);
        Assert.False(again.Json.GetProperty("removed").GetBoolean());
    }
}
