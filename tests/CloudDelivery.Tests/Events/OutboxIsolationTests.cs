using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Tests.Queue;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Tests.Events;

/// <summary>The outbox lives beside the records: it costs nothing without sinks, and no query over records ever sees it.</summary>
[Collection(AzuriteCollection.Name)]
public class OutboxIsolationTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Without_a_sink_no_event_row_is_written_and_with_one_every_submission_writes_its_event()
    {
        var storage = await azurite.NewStorageAsync();
        var settings = new Dictionary<string, string?>
        {
            ["CloudDelivery:Storage:ConnectionString"] = azurite.ConnectionString,
            ["CloudDelivery:Storage:RecipientsTable"] = storage.Options.RecipientsTable,
            ["CloudDelivery:Storage:BodiesContainer"] = storage.Options.BodiesContainer,
            ["CloudDelivery:Storage:WakeUpQueue"] = storage.Options.WakeUpQueue,
        };
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

        await using (var plain = new ServiceCollection().AddCloudDelivery(configuration).BuildServiceProvider())
        {
            var queue = plain.GetRequiredService<OutboundQueue>();
            Assert.Null(queue.Events);
            Assert.False(plain.GetRequiredService<EventDispatcher>().HasSinks);
            await SubmitAsync(queue, "plain@no-sink.example");
        }
        Assert.Empty(await OutboxRowsAsync(storage));

        var withSink = new ServiceCollection().AddCloudDelivery(configuration);
        withSink.AddSingleton<IEventSink>(new RecordingSink("test-di"));
        await using (var provider = withSink.BuildServiceProvider())
        {
            var queue = provider.GetRequiredService<OutboundQueue>();
            Assert.NotNull(queue.Events);
            Assert.True(provider.GetRequiredService<EventDispatcher>().HasSinks);
            await SubmitAsync(queue, "evented@with-sink.example");
        }
        var row = Assert.Single(await OutboxRowsAsync(storage));
        Assert.Equal("with-sink.example", row.PartitionKey);
    }

    [Fact]
    public async Task Outbox_rows_are_invisible_to_ready_due_message_purge_status_and_sampler_queries()
    {
        // Events are written, never published: the rows stay beside the records for the whole test.
        await using var world = await EventWorld.StartAsync(azurite, [new RecordingSink("test-isolation")], handOver: false);
        var submitted = await world.SubmitAsync("app@sender.example", ["a@isolated.example", "b@isolated.example"]);
        Assert.Equal(2, (await world.OutboxAsync()).Count);

        Assert.Equal(submitted.Recipients.Select(r => r.Id), (await world.Queue.ReadyAsync("isolated.example", CancellationToken.None)).Select(r => r.Id));
        Assert.Equal(["isolated.example"], await world.Queue.DomainsDueAsync(world.World.Time.GetUtcNow(), CancellationToken.None));
        Assert.Equal(2, (await world.Queue.FindMessageAsync(submitted.MessageId, CancellationToken.None)).Count);
        using var metrics = new QueueMetrics();
        var snapshot = await new QueueSampler(world.World.Storage, metrics, new TelemetryOptions(), world.World.Time).SampleAsync(CancellationToken.None);
        Assert.Equal(2, snapshot.Queued + snapshot.Deferred);

        var status = await RunCliAsync("status", "--json", "--storage", azurite.ConnectionString, "--set", $"CloudDelivery:Storage:RecipientsTable={world.World.Storage.Options.RecipientsTable}");
        Assert.Contains("\"queued\": 2", status, StringComparison.Ordinal);

        // Final and past the queue's retention: the purge deletes the records and leaves the outbox alone.
        foreach (var recipient in submitted.Recipients)
        {
            var record = (await world.Queue.FindAsync(recipient.Id, CancellationToken.None))!;
            record.State = RecipientState.Dropped;
            record.AddEvent(world.World.Time.GetUtcNow(), "dropped", "removed by an operator");
            await world.Queue.SaveAsync([record]);
        }
        world.World.Time.Advance(world.Queue.Options.Retention + TimeSpan.FromDays(1));
        var purged = await new QueuePurger(world.Queue).PurgeAsync(CancellationToken.None);

        Assert.Equal(2, purged.Records);
        Assert.Empty(await world.Queue.FindMessageAsync(submitted.MessageId, CancellationToken.None));
        Assert.Equal(4, (await world.OutboxAsync()).Count);
    }

    private static Task<SubmissionResult> SubmitAsync(OutboundQueue queue, string recipient) =>
        queue.SubmitAsync(new SubmissionRequest
        {
            Sender = "app@sender.example",
            Recipients = [recipient],
            Message = new MemoryStream("Subject: di\r\n\r\nbody\r\n"u8.ToArray()),
        }, CancellationToken.None);

    private static async Task<List<global::Azure.Data.Tables.TableEntity>> OutboxRowsAsync(CloudDelivery.Azure.Storage.OutboundStorage storage)
    {
        var rows = new List<global::Azure.Data.Tables.TableEntity>();
        await foreach (var entity in storage.Recipients.QueryAsync<global::Azure.Data.Tables.TableEntity>(EventOutbox.RowFilter))
        {
            rows.Add(entity);
        }
        return rows;
    }

    private static async Task<string> RunCliAsync(params string[] args)
    {
        using var output = new StringWriter();
        await CloudDelivery.Cli.CliApplication.RunAsync(args, output, output);
        return output.ToString();
    }
}
