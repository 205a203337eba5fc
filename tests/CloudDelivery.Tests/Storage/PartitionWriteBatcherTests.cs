using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Storage;

/// <summary>
/// Group commit on Azurite: writes to a partition that pile up behind one in flight go out together, each
/// caller returns once its own entities are stored, and one caller's failing write fails only that caller.
/// A first write is put in flight and held there at a gate until every other write has been handed over,
/// so what shares a request does not depend on timing.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class PartitionWriteBatcherTests(AzuriteFixture azurite)
{
    private static int nextTable;

    [Fact]
    public async Task Writes_waiting_behind_one_in_flight_share_one_transaction_and_all_are_stored()
    {
        var (table, gate) = await NewTableAsync();
        var batcher = new PartitionWriteBatcher(table);

        var first = await InFlightAsync(batcher, gate, "example.com");
        var writes = Enumerable.Range(0, 59).Select(i => batcher.WriteAsync("example.com", [Add("example.com", $"r{i:D2}")], 1024)).ToArray();
        gate.Open();
        await first;
        await Task.WhenAll(writes);

        // The first write alone, then the 59 that came while it was in flight, in one transaction.
        Assert.Equal(2, gate.Requests);
        Assert.Equal(60, await CountAsync(table, "example.com"));
    }

    [Fact]
    public async Task A_transaction_holds_at_most_100_entities()
    {
        var (table, gate) = await NewTableAsync();
        var batcher = new PartitionWriteBatcher(table);

        var first = await InFlightAsync(batcher, gate, "big.example");
        var writes = Enumerable.Range(0, 150).Select(i => batcher.WriteAsync("big.example", [Add("big.example", $"r{i:D3}")], 1024)).ToArray();
        gate.Open();
        await first;
        await Task.WhenAll(writes);

        Assert.Equal(3, gate.Requests); // the first, then 100, then 50
        Assert.Equal(151, await CountAsync(table, "big.example"));
    }

    [Fact]
    public async Task Partitions_are_never_mixed_and_large_writes_go_alone()
    {
        var (table, gate) = await NewTableAsync();
        var batcher = new PartitionWriteBatcher(table);

        var first = await InFlightAsync(batcher, gate, "a.example");
        var writes = new[]
        {
            first,
            batcher.WriteAsync("b.example", [Add("b.example", "other-partition")], 1024),
            batcher.WriteAsync("a.example", [Add("a.example", "big1")], PartitionWriteBatcher.MaxBytesPerTransaction - 1000),
            batcher.WriteAsync("a.example", [Add("a.example", "big2")], PartitionWriteBatcher.MaxBytesPerTransaction - 1000),
        };
        gate.Open();
        await Task.WhenAll(writes);

        // a: the first, then "big1" and "big2" apart (together they would pass the byte limit); b: its own.
        Assert.Equal(4, gate.Requests);
        Assert.Equal(3, await CountAsync(table, "a.example"));
        Assert.Equal(1, await CountAsync(table, "b.example"));
    }

    [Fact]
    public async Task A_failing_write_fails_only_its_caller_and_the_others_are_stored()
    {
        var (table, gate) = await NewTableAsync();
        var setup = new TableClient(azurite.ConnectionString, table.Name);
        for (var i = 0; i < 5; i++)
        {
            await setup.AddEntityAsync(new TableEntity("fail.example", $"r{i}") { ["State"] = "queued" });
        }
        var batcher = new PartitionWriteBatcher(table);
        var blocker = await InFlightAsync(batcher, gate, "fail.example");

        // Merges of five existing records and of one an operator deleted meanwhile: the shared transaction
        // fails as a whole, then each caller's write is tried alone.
        var good = Enumerable.Range(0, 5).Select(i => batcher.WriteAsync("fail.example", [Merge("fail.example", $"r{i}")], 1024)).ToArray();
        var bad = batcher.WriteAsync("fail.example", [Merge("fail.example", "deleted")], 1024);
        gate.Open();
        await blocker;
        await Task.WhenAll(good);
        var error = await Assert.ThrowsAsync<RequestFailedException>(() => bad);

        Assert.Equal(404, error.Status);
        for (var i = 0; i < 5; i++)
        {
            var stored = await table.GetEntityAsync<TableEntity>("fail.example", $"r{i}");
            Assert.Equal("delivered", stored.Value.GetString("State"));
        }
    }

    /// <summary>Starts a write and returns once its request is held at the gate.</summary>
    private static async Task<Task> InFlightAsync(PartitionWriteBatcher batcher, RequestGate gate, string partition)
    {
        var write = batcher.WriteAsync(partition, [Add(partition, "first")], 1024);
        await gate.FirstRequest.WaitAsync(TimeSpan.FromSeconds(30));
        return write;
    }

    private static TableTransactionAction Add(string partition, string row) =>
        new(TableTransactionActionType.Add, new TableEntity(partition, row) { ["State"] = "queued" });

    private static TableTransactionAction Merge(string partition, string row) =>
        new(TableTransactionActionType.UpdateMerge, new TableEntity(partition, row) { ["State"] = "delivered" }, ETag.All);

    private static async Task<int> CountAsync(TableClient table, string partition)
    {
        var count = 0;
        await foreach (var _ in table.QueryAsync<TableEntity>(e => e.PartitionKey == partition))
        {
            count++;
        }
        return count;
    }

    private async Task<(TableClient Table, RequestGate Gate)> NewTableAsync()
    {
        var name = $"batcher{Environment.ProcessId % 10000}X{Interlocked.Increment(ref nextTable)}";
        var setup = new TableClient(azurite.ConnectionString, name);
        await setup.CreateIfNotExistsAsync();
        var gate = new RequestGate();
        var options = new TableClientOptions();
        options.AddPolicy(gate, HttpPipelinePosition.PerCall);
        return (new TableClient(azurite.ConnectionString, name, options), gate);
    }

    /// <summary>Holds write requests until opened, and counts them (reads pass and are not counted).</summary>
    private sealed class RequestGate : HttpPipelinePolicy
    {
        private readonly TaskCompletionSource opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource first = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int requests;

        public Task FirstRequest => first.Task;

        public int Requests => Volatile.Read(ref requests);

        public void Open() => opened.TrySetResult();

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            if (message.Request.Method != RequestMethod.Get)
            {
                Interlocked.Increment(ref requests);
                first.TrySetResult();
                await opened.Task;
            }
            await ProcessNextAsync(message, pipeline);
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) => throw new NotSupportedException("async only");
    }
}
