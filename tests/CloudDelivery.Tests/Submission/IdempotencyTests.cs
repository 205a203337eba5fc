using System.Net;
using System.Text;
using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Tests.Submission;

/// <summary>
/// POST /api/messages with an Idempotency-Key, through <c>serve</c> over HTTP on loopback, Azurite and a
/// loopback MX: a retried submission is stored once and answered alike, whatever the timing.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IdempotencyTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private LoopbackWorld world = null!;
    private Microsoft.AspNetCore.Builder.WebApplication app = null!;
    private HttpClient http = null!;
    private LoopbackSmtpServer mx = null!;
    private OutboundStorage storage = null!;
    private string caFile = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("idem.example", 10, "mx.idem.example").AddMx("other.example", 10, "mx.idem.example");
        mx = await world.AddMxServerAsync("mx.idem.example");
        caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        storage = await azurite.NewStorageAsync();
        var port = LoopbackWorld.FreePort();
        var settings = ServeHostSettings.For(world, azurite.ConnectionString, storage, caFile);
        settings["Logging:LogLevel:Default"] = "Warning";
        settings["CloudDelivery:Queue:WakeUpWindow"] = "00:00:00";
        app = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await app.StartAsync();
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
    }

    public async Task DisposeAsync()
    {
        http.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
        await world.DisposeAsync();
        File.Delete(caFile);
    }

    /// <summary>A message larger than the inline limit, so that its body is a blob the test can count.</summary>
    private static string LargeMessage(string subject) =>
        $"From: <s@sender.example>\r\nSubject: {subject}\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 998) + "\r\n", 60));

    private async Task<(HttpStatusCode Status, string Json)> PostAsync(string? key, string message, params string[] to)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/messages?from=s@sender.example&to={string.Join(',', to.DefaultIfEmpty("r@idem.example"))}")
        {
            Content = new StringContent(message, Encoding.UTF8, "message/rfc822"),
        };
        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        }
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<(HttpStatusCode Status, string Json)> PostJsonAsync(object body, string? header = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/messages") { Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json") };
        if (header is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", header);
        }
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<List<RecipientRecord>> RecordsAsync()
    {
        var records = new List<RecipientRecord>();
        // Records only: the domain's lease, its "~tls" summary and event outbox rows sort from "~" on.
        await foreach (var record in storage.Recipients.QueryAsync<RecipientRecord>(r => r.RowKey.CompareTo(RecipientRecord.RecordRowKeyLimit) < 0))
        {
            records.Add(record);
        }
        return records;
    }

    private async Task<int> BlobCountAsync()
    {
        var count = 0;
        await foreach (var _ in storage.Bodies.GetBlobsAsync())
        {
            count++;
        }
        return count;
    }

    private async Task<int> KeyCountAsync()
    {
        var count = 0;
        await foreach (var _ in storage.Idempotency.QueryAsync<TableEntity>())
        {
            count++;
        }
        return count;
    }

    private async Task WaitDeliveredAsync(int records)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while ((await RecordsAsync()).Count(r => r.State == RecipientState.Delivered) < records)
        {
            await Task.Delay(50, deadline.Token);
        }
    }

    private static string MessageIdOf(string json) => JsonDocument.Parse(json).RootElement.GetProperty("messageId").GetString()!;

    private static string ErrorOf(string json) => JsonDocument.Parse(json).RootElement.GetProperty("error").GetString()!;

    [Fact]
    public async Task Fifty_concurrent_identical_keyed_posts_store_one_message_deliver_it_once_and_get_equal_answers()
    {
        var message = LargeMessage("fifty");

        var answers = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => PostAsync("order-4711", message)));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.Accepted, a.Status));
        Assert.Single(answers.Select(a => a.Json).Distinct());
        var record = Assert.Single(await RecordsAsync());
        Assert.Equal(MessageIdOf(answers[0].Json), record.MessageId);
        Assert.Equal(1, await BlobCountAsync());
        await WaitDeliveredAsync(1);
        Assert.Equal(["r@idem.example"], Assert.Single(mx.Messages).Recipients);
    }

    [Fact]
    public async Task The_same_key_with_another_message_or_envelope_gets_422_and_stores_nothing()
    {
        var first = await PostAsync("k-422", "Subject: one\r\n\r\nfirst\r\n");

        var otherBody = await PostAsync("k-422", "Subject: one\r\n\r\nsecond\r\n");
        var otherRecipient = await PostAsync("k-422", "Subject: one\r\n\r\nfirst\r\n", "else@idem.example");

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.Equal((HttpStatusCode)422, otherBody.Status);
        Assert.Equal("idempotency-key-reused", ErrorOf(otherBody.Json));
        Assert.Equal((HttpStatusCode)422, otherRecipient.Status);
        Assert.Single(await RecordsAsync());
    }

    [Fact]
    public async Task A_repeat_after_completion_gets_the_original_answer_in_either_form_and_stores_nothing()
    {
        const string message = "Subject: again\r\n\r\nonce only\r\n";
        var first = await PostAsync("k-repeat", message);

        var raw = await PostAsync("k-repeat", message);
        // The JSON form's field names the same key, and the same message means the same submission.
        var json = await PostJsonAsync(new { from = "s@sender.example", to = new[] { "r@idem.example" }, message = Convert.ToBase64String(Encoding.UTF8.GetBytes(message)), idempotencyKey = "k-repeat" });
        // The draft's form of the header: a Structured Field string.
        var quoted = await PostAsync("\"k-repeat\"", message);

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.All(new[] { raw, json, quoted }, a => Assert.Equal((HttpStatusCode.Accepted, first.Json), a));
        Assert.Single(await RecordsAsync());
        Assert.Equal(1, await KeyCountAsync());
    }

    [Fact]
    public async Task When_the_stored_message_was_answered_503_the_retry_gets_its_id_and_nothing_is_stored_twice()
    {
        // The write committed but the reply was lost: the hook fails the first attempt after its records are stored.
        var endpoint = app.Services.GetRequiredService<SubmissionEndpoint>();
        var failures = 1;
        endpoint.Idempotency.AfterStoredForTests = _ => Interlocked.Decrement(ref failures) >= 0 ? throw new RequestFailedException(503, "the reply was lost") : Task.CompletedTask;
        var message = LargeMessage("lost reply");

        var lost = await PostAsync("k-lost", message, "a@idem.example", "b@other.example");
        var retry = await PostAsync("k-lost", message, "a@idem.example", "b@other.example");
        var repeat = await PostAsync("k-lost", message, "a@idem.example", "b@other.example");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, lost.Status);
        Assert.Equal(HttpStatusCode.Accepted, retry.Status);
        var records = await RecordsAsync();
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(MessageIdOf(retry.Json), r.MessageId));
        Assert.Equal(1, await BlobCountAsync());
        var ids = JsonDocument.Parse(retry.Json).RootElement.GetProperty("recipients").EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToList();
        Assert.Equal(records.Select(r => r.Id).Order(), ids.Order());
        Assert.Equal((HttpStatusCode.Accepted, retry.Json), repeat);
        await WaitDeliveredAsync(2);
        Assert.Equal(2, mx.Messages.Count);
    }

    [Theory]
    [InlineData("header", "")]
    [InlineData("header", "\"unterminated")]
    [InlineData("header", "\"bad \\escape\"")]
    [InlineData("field", "")]
    [InlineData("field", "tab\tinside")]
    [InlineData("field", "clé")]
    [InlineData("field", "over-long")]
    [InlineData("header", "over-long")]
    public async Task Malformed_keys_get_400_and_store_nothing(string where, string key)
    {
        key = key == "over-long" ? new string('k', 256) : key;
        var message = Convert.ToBase64String("Subject: k\r\n\r\nk\r\n"u8.ToArray());

        var answer = where == "header"
            ? await PostJsonAsync(new { from = "s@sender.example", to = new[] { "r@idem.example" }, message }, header: key)
            : await PostJsonAsync(new { from = "s@sender.example", to = new[] { "r@idem.example" }, message, idempotencyKey = key });

        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.Equal("invalid-idempotency-key", ErrorOf(answer.Json));
        Assert.Empty(await RecordsAsync());
        Assert.Equal(0, await KeyCountAsync());
    }

    [Fact]
    public async Task A_header_and_a_field_that_differ_get_400()
    {
        var message = Convert.ToBase64String("Subject: k\r\n\r\nk\r\n"u8.ToArray());

        var answer = await PostJsonAsync(new { from = "s@sender.example", to = new[] { "r@idem.example" }, message, idempotencyKey = "one" }, header: "two");

        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.Equal("conflicting-idempotency-keys", ErrorOf(answer.Json));
        Assert.Empty(await RecordsAsync());
    }

    [Fact]
    public async Task A_keyed_submission_the_queue_refuses_frees_its_key()
    {
        var refused = await PostAsync("k-free", "Subject: x\r\n\r\nx\r\n", "not an address");
        var accepted = await PostAsync("k-free", "Subject: x\r\n\r\nx\r\n");

        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Equal(HttpStatusCode.Accepted, accepted.Status);
        Assert.Single(await RecordsAsync());
    }

    [Fact]
    public async Task Without_a_key_every_post_is_a_new_message_and_no_key_is_stored()
    {
        const string message = "Subject: plain\r\n\r\nno key\r\n";

        var first = await PostAsync(null, message);
        var second = await PostAsync(null, message);

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.Equal(HttpStatusCode.Accepted, second.Status);
        Assert.NotEqual(MessageIdOf(first.Json), MessageIdOf(second.Json));
        Assert.Equal(2, (await RecordsAsync()).Count);
        Assert.Equal(0, await KeyCountAsync());
    }
}

/// <summary>Keys over time and after a crash, on a clock the test moves: expiry, the purge, and finishing a submission its owner left half-stored.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class IdempotencyRecoveryTests(AzuriteFixture azurite)
{
    private static HttpSubmission Keyed(string key, string[] to, string message) => new(
        to.Select(t => ("to", t)).Append(("from", "s@sender.example")).ToLookup(p => p.Item1, p => p.Item2),
        new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { [IdempotencyKey.HeaderName] = key },
        "message/rfc822",
        new MemoryStream(Encoding.UTF8.GetBytes(message)));

    private static string MessageIdOf(HttpSubmissionResponse response) => JsonDocument.Parse(response.Json).RootElement.GetProperty("messageId").GetString()!;

    private static async Task<int> CountAsync(TableClient table, string? filter = null)
    {
        var count = 0;
        await foreach (var entity in table.QueryAsync<TableEntity>(filter))
        {
            count += entity.RowKey == RecipientRecord.LeaseRowKey ? 0 : 1;
        }
        return count;
    }

    [Fact]
    public async Task A_key_past_its_window_makes_a_new_message_and_the_purge_deletes_it()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var endpoint = new SubmissionEndpoint(world.Queue);
        var purger = new QueuePurger(world.Queue);
        const string message = "Subject: daily\r\n\r\nreport\r\n";

        var first = await endpoint.HandleAsync(Keyed("daily-report", ["r@idem.example"], message), CancellationToken.None);
        world.Time.Advance(TimeSpan.FromHours(23));
        var withinWindow = await endpoint.HandleAsync(Keyed("daily-report", ["r@idem.example"], message), CancellationToken.None);
        var keptWithin = await purger.PurgeAsync(CancellationToken.None);
        world.Time.Advance(TimeSpan.FromHours(2));
        var purged = await purger.PurgeAsync(CancellationToken.None);
        var keysAfterPurge = await CountAsync(world.Storage.Idempotency);
        var afterWindow = await endpoint.HandleAsync(Keyed("daily-report", ["r@idem.example"], message), CancellationToken.None);

        Assert.Equal(202, first.Status);
        Assert.Equal(first, withinWindow);
        Assert.Equal(0, keptWithin.IdempotencyKeys);
        Assert.Equal(1, purged.IdempotencyKeys);
        Assert.Equal(0, keysAfterPurge);
        Assert.Equal(202, afterWindow.Status);
        Assert.NotEqual(MessageIdOf(first), MessageIdOf(afterWindow));
        Assert.Equal(2, await CountAsync(world.Storage.Recipients));
    }

    [Fact]
    public async Task A_key_past_its_window_but_not_yet_purged_is_free_again()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var endpoint = new SubmissionEndpoint(world.Queue);

        var first = await endpoint.HandleAsync(Keyed("k", ["r@idem.example"], "Subject: a\r\n\r\na\r\n"), CancellationToken.None);
        world.Time.Advance(world.Queue.Options.IdempotencyWindow + TimeSpan.FromMinutes(1));
        // Another message under the old key: no longer a reuse once the window is over.
        var second = await endpoint.HandleAsync(Keyed("k", ["r@idem.example"], "Subject: b\r\n\r\nb\r\n"), CancellationToken.None);

        Assert.Equal(202, second.Status);
        Assert.NotEqual(MessageIdOf(first), MessageIdOf(second));
        Assert.Equal(1, await CountAsync(world.Storage.Idempotency));
    }

    [Fact]
    public async Task A_repeat_while_the_first_is_still_storing_waits_for_it_then_gets_409_with_retry_after()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var store = new IdempotencyStore(world.Storage.Idempotency);
        await store.ReserveAsync("busy", Guid.CreateVersion7().ToString("N"), world.Time.GetUtcNow(), TimeSpan.FromHours(24), CancellationToken.None);

        // The repeat polls the reservation; the owner neither finishes nor goes stale within the wait.
        var repeat = new SubmissionEndpoint(world.Queue).HandleAsync(Keyed("busy", ["r@idem.example"], "Subject: b\r\n\r\nb\r\n"), CancellationToken.None);
        await Task.Delay(200);
        Assert.False(repeat.IsCompleted);
        world.Time.Advance(IdempotentSubmission.DefaultWaitForOwner + TimeSpan.FromSeconds(1));
        var answer = await repeat.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(409, answer.Status);
        Assert.Equal("idempotency-key-in-progress", JsonDocument.Parse(answer.Json).RootElement.GetProperty("error").GetString());
        Assert.Equal(SubmissionEndpoint.RetryAfterSeconds, answer.RetryAfterSeconds);
        Assert.Equal(0, await CountAsync(world.Storage.Recipients));
    }

    [Fact]
    public async Task A_key_costs_two_storage_transactions_and_a_repeat_one_read()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var endpoint = new SubmissionEndpoint(world.Queue);
        const string message = "Subject: cost\r\n\r\ncounted\r\n";
        var counter = world.Storage.Counter;

        var before = counter.Count;
        await endpoint.HandleAsync(Keyed("unkeyed", ["r@idem.example"], message) with { Headers = new Dictionary<string, string>() }, CancellationToken.None);
        var unkeyed = counter.Count - before;
        before = counter.Count;
        await endpoint.HandleAsync(Keyed("cost", ["r@idem.example"], message), CancellationToken.None);
        var keyed = counter.Count - before;
        before = counter.Count;
        await endpoint.HandleAsync(Keyed("cost", ["r@idem.example"], message), CancellationToken.None);
        var repeat = counter.Count - before;

        // Reservation insert and the completing replace; a repeat's insert fails (409) and it reads the answer.
        Assert.Equal(unkeyed + 2, keyed);
        Assert.Equal(2, repeat);
    }

    [Fact]
    public async Task A_crashed_owner_s_half_stored_message_is_finished_by_the_retry_storing_only_the_missing_domain()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("first.example", 10, "mx.first.example").AddMx("second.example", 10, "mx.second.example");
        var first = await world.Network.AddMxServerAsync("mx.first.example");
        var second = await world.Network.AddMxServerAsync("mx.second.example");
        const string message = "From: <s@sender.example>\r\nSubject: half\r\n\r\nstored by halves\r\n";
        string[] to = ["a@first.example", "b@second.example"];

        // The owner reserved the key, uploaded the body (a blob: the message is for two domains), stored the
        // first domain's record and crashed before the second.
        var store = new IdempotencyStore(world.Storage.Idempotency);
        var (reservation, owned) = await store.ReserveAsync("half", Guid.CreateVersion7().ToString("N"), world.Time.GetUtcNow(), TimeSpan.FromHours(24), CancellationToken.None);
        Assert.True(owned);
        var crashed = new OutboundQueue(world.Storage, new OutboundQueueOptions { InlineBodyLimit = 0, WakeUpWindow = TimeSpan.Zero }, world.Time);
        await crashed.SubmitAsync(new SubmissionRequest { Sender = "s@sender.example", Recipients = [to[0]], Message = new MemoryStream(Encoding.UTF8.GetBytes(message)), MessageId = reservation.MessageId }, CancellationToken.None);
        var storedFirst = (await world.Queue.FindAsync($"first.example/{reservation.MessageId}.0000", CancellationToken.None))!;
        var blob = (await world.Storage.Bodies.GetBlobClient(reservation.MessageId).GetPropertiesAsync()).Value;
        world.Time.Advance(IdempotentSubmission.DefaultStaleAfter + TimeSpan.FromSeconds(1));

        var retry = await new SubmissionEndpoint(world.Queue).HandleAsync(Keyed("half", to, message), CancellationToken.None);

        Assert.Equal(202, retry.Status);
        Assert.Equal(reservation.MessageId, MessageIdOf(retry));
        var ids = JsonDocument.Parse(retry.Json).RootElement.GetProperty("recipients").EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToList();
        Assert.Equal([$"first.example/{reservation.MessageId}.0000", $"second.example/{reservation.MessageId}.0000"], ids);
        // The first domain's record is untouched, the second shares the stored body, which was not uploaded again.
        Assert.Equal(storedFirst.ETag, (await world.Queue.FindAsync(storedFirst.Id, CancellationToken.None))!.ETag);
        var storedSecond = (await world.Queue.FindAsync(ids[1]!, CancellationToken.None))!;
        Assert.Equal((storedFirst.Body, storedFirst.BodySize), (storedSecond.Body, storedSecond.BodySize));
        Assert.Equal(blob.ETag, (await world.Storage.Bodies.GetBlobClient(reservation.MessageId).GetPropertiesAsync()).Value.ETag);
        Assert.Equal(2, await CountAsync(world.Storage.Recipients));
        // Completed now: a further repeat gets the same answer; each domain gets the message once.
        Assert.Equal(retry, await new SubmissionEndpoint(world.Queue).HandleAsync(Keyed("half", to, message), CancellationToken.None));
        await world.DrainAsync();
        Assert.Equal(["a@first.example"], Assert.Single(first.Messages).Recipients);
        Assert.Equal(["b@second.example"], Assert.Single(second.Messages).Recipients);
    }
}

/// <summary>The Functions app's trigger (the real <see cref="CloudDelivery.Functions.DeliveryFunctions"/>) takes the key as <c>serve</c> does.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class FunctionIdempotencyTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_repeated_keyed_submission_to_the_function_gets_the_first_answer_and_stores_once()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var functions = new CloudDelivery.Functions.DeliveryFunctions(world.Handler, new CloudDelivery.Azure.WakeUps.WakeUpWorker(world.Queue, world.Handler, new CloudDelivery.Azure.WakeUps.WakeUpWorkerOptions()), new SubmissionEndpoint(world.Queue));

        async Task<(int Status, string Body)> SubmitAsync()
        {
            var request = FunctionHttpCall.Request("POST", "/api/messages?from=s@sender.example&to=r@idem.example", "message/rfc822", "Subject: f\r\n\r\nfunction\r\n");
            request.Headers["Idempotency-Key"] = "function-key";
            var response = await FunctionHttpCall.InvokeAsync(request, r => functions.SubmitMessage(r, CancellationToken.None));
            return (response.StatusCode, Encoding.UTF8.GetString(response.Body()));
        }

        var first = await SubmitAsync();
        var repeat = await SubmitAsync();

        Assert.Equal(202, first.Status);
        Assert.Equal(first, repeat);
        Assert.Single(await world.Queue.FindMessageAsync(JsonDocument.Parse(first.Body).RootElement.GetProperty("messageId").GetString()!, CancellationToken.None));
        var records = 0;
        await foreach (var record in world.Storage.Recipients.QueryAsync<RecipientRecord>(r => r.RowKey.CompareTo(RecipientRecord.RecordRowKeyLimit) < 0))
        {
            records++;
        }
        Assert.Equal(1, records);
    }
}

/// <summary>The idempotency settings: bound from configuration and checked at start-up.</summary>
public sealed class IdempotencySettingsTests
{
    [Theory]
    [InlineData("00:00:00")]
    [InlineData("00:00:30")]
    [InlineData("400.00:00:00")]
    public async Task A_window_too_short_or_too_long_stops_the_host_naming_the_key(string window)
    {
        await using var app = ServeCommand.Build("http://127.0.0.1:0", new Dictionary<string, string?>
        {
            ["CloudDelivery:Hostname"] = "mta.loopback.test",
            ["CloudDelivery:Storage:ConnectionString"] = "UseDevelopmentStorage=true",
            ["Logging:LogLevel:Default"] = "None",
            ["CloudDelivery:Queue:IdempotencyWindow"] = window,
        });

        var failure = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => app.StartAsync());

        Assert.Contains($"CloudDelivery:Queue:IdempotencyWindow {TimeSpan.Parse(window, System.Globalization.CultureInfo.InvariantCulture)}: expected", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_window_and_the_table_are_bound_from_their_keys()
    {
        using var provider = new ServiceCollection().AddCloudDelivery(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["CloudDelivery:Queue:IdempotencyWindow"] = "02:00:00",
            ["CloudDelivery:Storage:IdempotencyTable"] = "keys",
        }).Build()).BuildServiceProvider();

        var options = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<CloudDeliveryOptions>>().Value;

        Assert.Equal(TimeSpan.FromHours(2), options.Queue.IdempotencyWindow);
        Assert.Equal("keys", provider.GetRequiredService<OutboundStorage>().Idempotency.Name);
    }
}
