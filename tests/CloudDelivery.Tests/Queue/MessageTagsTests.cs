using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Cli;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Dkim;
using CloudDelivery.Tests.Dkim;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// Tags end to end on Azurite: from the X-CloudDelivery-Tags header (stripped before signing and storing),
/// the JSON form and <c>send --tag</c>, onto every record and into <c>status</c>; bounds refused with 400
/// invalid-tags and nothing stored.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class MessageTagsTests(AzuriteFixture azurite)
{
    private const string Domain = "tags.example";

    private static async Task<QueueWorld> StartAsync(AzuriteFixture azurite)
    {
        var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx(Domain, 10, $"mx.{Domain}");
        return world;
    }

    private static async Task<HttpSubmissionResponse> PostAsync(OutboundQueue queue, string contentType, byte[] body, string query = "") =>
        await new SubmissionEndpoint(queue).HandleAsync(
            new HttpSubmission(
                System.Web.HttpUtility.ParseQueryString(query).AllKeys.SelectMany(k => System.Web.HttpUtility.ParseQueryString(query).GetValues(k)!.Select(v => (Key: k!, Value: v))).ToLookup(p => p.Key, p => p.Value),
                new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase),
                contentType,
                new MemoryStream(body)),
            CancellationToken.None);

    private static byte[] Json(string message, object? tags) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        from = "s@signed.example",
        to = new[] { $"r@{Domain}", $"r2@{Domain}" },
        message = Convert.ToBase64String(Encoding.ASCII.GetBytes(message)),
        tags,
    });

    private static async Task<List<RecipientRecord>> RecordsAsync(QueueWorld world, HttpSubmissionResponse response)
    {
        var messageId = JsonDocument.Parse(response.Json).RootElement.GetProperty("messageId").GetString()!;
        return await world.Queue.FindMessageAsync(messageId, CancellationToken.None);
    }

    [Fact]
    public async Task Header_tags_are_stored_and_stripped_and_the_signed_message_still_verifies()
    {
        await using var world = await StartAsync(azurite);
        var mx = await world.Network.AddMxServerAsync($"mx.{Domain}");
        var key = DkimTestKey.Ed25519("signed.example");
        var queue = new OutboundQueue(world.Storage, world.Queue.Options, world.Time, new DkimMessageSigner([key.ToKey()]));
        var handler = new DomainDeliveryHandler(queue, world.Engine, "mta.loopback.test");
        // Folded over three lines, between other fields, with a field whose name only starts the same.
        var message = "From: <s@signed.example>\r\nX-CloudDelivery-Tags: campaign=spring-sale;\r\n tenant=t-42 ;\r\n\tkind=receipt\r\nX-CloudDelivery-Tags-Other: kept\r\nSubject: tagged\r\n\r\nX-CloudDelivery-Tags: body=not-a-header\r\n";

        var response = await PostAsync(queue, "message/rfc822", Encoding.ASCII.GetBytes(message), $"from=s@signed.example&to=r@{Domain}");
        await world.DrainAsync(handler);

        Assert.Equal(202, response.Status);
        var record = Assert.Single(await RecordsAsync(world, response));
        Assert.Equal(new Dictionary<string, string> { ["campaign"] = "spring-sale", ["tenant"] = "t-42", ["kind"] = "receipt" }, record.TagMap);
        var received = Assert.Single(mx.Messages).Data;
        var text = Encoding.ASCII.GetString(received);
        Assert.DoesNotContain("X-CloudDelivery-Tags:", text[..text.IndexOf("\r\n\r\n", StringComparison.Ordinal)], StringComparison.OrdinalIgnoreCase);
        Assert.EndsWith("From: <s@signed.example>\r\nX-CloudDelivery-Tags-Other: kept\r\nSubject: tagged\r\n\r\nX-CloudDelivery-Tags: body=not-a-header\r\n", text, StringComparison.Ordinal);
        Assert.True(await DkimTestKey.VerifyAsync(received, key));
        Assert.Equal(received.Length, record.BodySize);
    }

    [Fact]
    public async Task Json_tags_go_on_every_record_and_win_over_the_header_on_a_shared_key()
    {
        await using var world = await StartAsync(azurite);
        var message = "From: <s@signed.example>\r\nX-CloudDelivery-Tags: campaign=from-header; origin=template\r\nSubject: s\r\n\r\nbody\r\n";

        var response = await PostAsync(world.Queue, "application/json", Json(message, new Dictionary<string, string> { ["campaign"] = "from-json", ["order"] = "1234" }));

        Assert.Equal(202, response.Status);
        var records = await RecordsAsync(world, response);
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(new Dictionary<string, string> { ["campaign"] = "from-json", ["origin"] = "template", ["order"] = "1234" }, r.TagMap));
        var status = JsonDocument.Parse(StatusCommand.ToJson(records)).RootElement;
        Assert.Equal("from-json", status[0].GetProperty("tags").GetProperty("campaign").GetString());
    }

    public static TheoryData<string, string?, string> OutOfBounds() => new()
    {
        { "Subject: s\r\n\r\nb\r\n", """{"k 1": "v"}""", "tag \"k 1\"" },
        { "Subject: s\r\n\r\nb\r\n", $$"""{"{{new string('k', 65)}}": "v"}""", "longer than 64" },
        { "Subject: s\r\n\r\nb\r\n", $$"""{"k": "{{new string('v', 257)}}"}""", "longer than 256" },
        { "Subject: s\r\n\r\nb\r\n", """{"k": "a\u0007b"}""", "printable ASCII" },
        { "Subject: s\r\n\r\nb\r\n", """{"k": 1}""", "must be a string" },
        { "Subject: s\r\n\r\nb\r\n", "[\"k\"]", "object of strings" },
        { "Subject: s\r\n\r\nb\r\n", "{" + string.Join(",", Enumerable.Range(0, 11).Select(i => $"\"k{i}\":\"v\"")) + "}", "at most 10" },
        { "X-CloudDelivery-Tags: novalue\r\n\r\nb\r\n", null, "not key=value" },
        { "X-CloudDelivery-Tags: a=1; a=2\r\n\r\nb\r\n", null, "given twice" },
        { "X-CloudDelivery-Tags: caf\u00e9=1\r\n\r\nb\r\n", null, "may hold only" },
        { "X-CloudDelivery-Tags: k=" + new string('v', 9000) + "\r\n\r\nb\r\n", null, "longer than 8192" },
        { "X-CloudDelivery-Tags: " + string.Join(";", Enumerable.Range(0, 6).Select(i => $"h{i}=v")) + "\r\n\r\nb\r\n", "{" + string.Join(",", Enumerable.Range(0, 5).Select(i => $"\"j{i}\":\"v\"")) + "}", "11 tags" },
    };

    [Theory]
    [MemberData(nameof(OutOfBounds))]
    public async Task Tags_out_of_bounds_are_refused_with_invalid_tags_and_nothing_is_stored(string message, string? tagsJson, string why)
    {
        await using var world = await StartAsync(azurite);
        var body = Encoding.UTF8.GetBytes($$"""{"from":"s@signed.example","to":["r@{{Domain}}"],"message":"{{Convert.ToBase64String(Encoding.Latin1.GetBytes(message))}}"{{(tagsJson is null ? string.Empty : $",\"tags\":{tagsJson}")}}}""");

        var response = await PostAsync(world.Queue, "application/json", body);

        Assert.Equal(400, response.Status);
        var error = JsonDocument.Parse(response.Json).RootElement;
        Assert.Equal("invalid-tags", error.GetProperty("error").GetString());
        Assert.Contains(why, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(world.Storage.Recipients.Query<global::Azure.Data.Tables.TableEntity>(e => e.PartitionKey == Domain));
        Assert.Empty(world.Storage.Bodies.GetBlobs());
        Assert.Null((await world.Storage.WakeUps.PeekMessageAsync()).Value);
    }

    [Fact]
    public async Task Send_takes_tags_and_status_shows_them()
    {
        await using var world = await StartAsync(azurite);
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, "Subject: cli\r\nX-CloudDelivery-Tags: source=file; tenant=header\r\n\r\nbody\r\n");
        string[] set = ["--storage", azurite.ConnectionString,
            "--set", $"CloudDelivery:Storage:RecipientsTable={world.Storage.Options.RecipientsTable}",
            "--set", $"CloudDelivery:Storage:BodiesContainer={world.Storage.Options.BodiesContainer}",
            "--set", $"CloudDelivery:Storage:WakeUpQueue={world.Storage.Options.WakeUpQueue}",
            "--set", $"CloudDelivery:Storage:PoisonQueue={world.Storage.Options.PoisonQueue}"];
        try
        {
            var (exit, sent) = await RunAsync(["send", "--from", "s@sender.example", "--to", $"r@{Domain}", "--message", file, "--tag", "tenant=cli", "--tag", "order=77", .. set]);
            Assert.Equal(0, exit);
            var messageId = sent.Split(' ')[1];

            var (_, text) = await RunAsync(["status", messageId, .. set]);
            Assert.Contains("tags: order=77; source=file; tenant=cli", text, StringComparison.Ordinal);
            var (_, json) = await RunAsync(["status", messageId, "--json", .. set]);
            var tags = JsonDocument.Parse(json).RootElement[0].GetProperty("tags");
            Assert.Equal(("cli", "77", "file"), (tags.GetProperty("tenant").GetString(), tags.GetProperty("order").GetString(), tags.GetProperty("source").GetString()));

            var (refused, why) = await RunAsync(["send", "--from", "s@sender.example", "--to", $"r@{Domain}", "--message", file, "--tag", "no-equals-sign", .. set]);
            Assert.Equal(CliApplication.ExitUsage, refused);
            Assert.Contains("not key=value", why, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<(int Exit, string Output)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        var exit = await CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }
}
