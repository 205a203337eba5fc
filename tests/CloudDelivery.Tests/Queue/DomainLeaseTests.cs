using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Tests.MtaSts;

namespace CloudDelivery.Tests.Queue;

/// <summary>The domain lease under contention from other workers' rerun requests, against Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public class DomainLeaseTests(AzuriteFixture azurite)
{
    /// <summary>
    /// Before each of the holder's next <see cref="Remaining"/> lease writes, another worker (a second,
    /// plain client) reads the lease and asks for a rerun, as a burst of wake-ups for a busy domain does.
    /// </summary>
    private sealed class RerunBeforeEachWrite(TableClient other, string domain) : HttpPipelineSynchronousPolicy
    {
        public int Remaining { get; set; }

        public override void OnSendingRequest(HttpMessage message)
        {
            if (Remaining > 0 && message.Request.Method == RequestMethod.Put && message.Request.Uri.Path.Contains("lease", StringComparison.Ordinal))
            {
                Remaining--;
                var seen = other.GetEntity<TableEntity>(domain, RecipientRecord.LeaseRowKey).Value.ETag;
                Assert.True(DomainLease.RequestRerunAsync(other, domain, seen, CancellationToken.None).GetAwaiter().GetResult());
            }
        }
    }

    [Fact]
    public async Task A_holder_pressed_by_many_rerun_requests_neither_lets_them_drop_nor_claims_a_release_it_did_not_make()
    {
        var storage = await azurite.NewStorageAsync();
        var table = storage.Options.RecipientsTable;
        var other = new TableClient(azurite.ConnectionString, table);
        const string domain = "contended.example";
        var interference = new RerunBeforeEachWrite(other, domain);
        var options = new TableClientOptions();
        options.AddPolicy(interference, HttpPipelinePosition.PerCall);
        var holderTable = new TableClient(azurite.ConnectionString, table, options);
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var (lease, _, _) = await DomainLease.TryAcquireAsync(holderTable, time, domain, TimeSpan.FromMinutes(5), CancellationToken.None);
        Assert.NotNull(lease);

        // Every write the holder makes while letting go meets a fresh rerun request.
        interference.Remaining = 8;
        var released = await lease.TryReleaseAsync(TimeSpan.FromMinutes(5), CancellationToken.None);

        // Requests were made, so the holder must run again; and if it says it let go, it did.
        var stored = (await other.GetEntityAsync<TableEntity>(domain, RecipientRecord.LeaseRowKey)).Value;
        if (released)
        {
            Assert.Equal(string.Empty, stored.GetString("Owner"));
        }
        Assert.False(released);
        Assert.Equal(lease.Owner, stored.GetString("Owner"));
    }
}
