using CloudDelivery.Azure.Queue;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Storage;

/// <summary>
/// The request counter splits requests by service, because Azure prices them per service (a blob write
/// costs about 140 table transactions): the benchmark's cost per million is computed from these counts.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class StorageTransactionCounterTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_submission_is_counted_per_service_blob_table_and_queue()
    {
        var storage = await azurite.NewStorageAsync();
        // Two domains: the body goes to a blob (it is not inlined for more than one domain), one record
        // per domain goes to the table, and each domain gets a wake-up on the queue.
        var queue = new OutboundQueue(storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero });
        var before = storage.Counter.ByService.ToDictionary(p => p.Key, p => p.Value);

        await queue.SubmitAsync(new SubmissionRequest { Sender = "app@sender.example", Recipients = ["a@one.example", "b@two.example"], Message = new MemoryStream("Subject: counted\r\n\r\nhello\r\n"u8.ToArray()) }, CancellationToken.None);

        long Delta(string service) => storage.Counter.ByService.GetValueOrDefault(service) - before.GetValueOrDefault(service);
        Assert.Equal(1, Delta("blob"));
        Assert.Equal(2, Delta("table"));
        Assert.Equal(2, Delta("queue"));
        Assert.Equal(storage.Counter.ByService.Values.Sum(), storage.Counter.Count);
        Assert.Contains(storage.Counter.ByKind.Keys, k => k.StartsWith("queue POST", StringComparison.Ordinal));
    }
}
