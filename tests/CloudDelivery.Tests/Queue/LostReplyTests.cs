using Azure.Core;
using Azure.Core.Pipeline;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// A submission whose records were stored but whose storage reply was lost: the storage client retries
/// the transaction, finds the records there (409), and the submission must still count as stored — once.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class LostReplyTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_committed_write_whose_reply_was_lost_is_stored_once_and_reported_stored()
    {
        var transport = new LosesFirstTransactionReply();
        var storage = await azurite.NewStorageAsync(transport);
        var queue = new OutboundQueue(storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero });

        var result = await queue.SubmitAsync(new SubmissionRequest
        {
            Sender = "sender@sender.example",
            Recipients = ["a@lost.example", "b@lost.example"],
            Message = new MemoryStream("Subject: lost reply\r\n\r\nbody\r\n"u8.ToArray()),
        }, CancellationToken.None);

        Assert.True(transport.Lost, "the first transaction's reply was not lost: the test proves nothing");
        Assert.Equal(2, result.Recipients.Count);
        var stored = await queue.FindMessageAsync(result.MessageId, CancellationToken.None);
        Assert.Equal(result.Recipients.Select(r => r.Id).Order(), stored.Select(r => r.Id).Order());
    }

    [Fact]
    public async Task Records_of_another_message_under_the_same_keys_are_not_taken_for_ours()
    {
        var storage = await azurite.NewStorageAsync();
        var queue = new OutboundQueue(storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero });
        var messageId = Guid.CreateVersion7().ToString("N");
        // Someone else's entity under our first row key: the conflict is real, and the submission fails.
        await storage.Recipients.AddEntityAsync(new global::Azure.Data.Tables.TableEntity("taken.example", $"{messageId}.0000") { ["MessageId"] = "another" });

        await Assert.ThrowsAnyAsync<global::Azure.RequestFailedException>(() => queue.SubmitAsync(new SubmissionRequest
        {
            Sender = "sender@sender.example",
            Recipients = ["a@taken.example"],
            Message = new MemoryStream("Subject: taken\r\n\r\nbody\r\n"u8.ToArray()),
            MessageId = messageId,
        }, CancellationToken.None));
    }

    /// <summary>Lets the first entity-group transaction reach storage, then loses its reply, as a timeout would.</summary>
    private sealed class LosesFirstTransactionReply : HttpPipelineTransport
    {
        private readonly HttpClientTransport inner = new();
        private int armed = 1;

        public bool Lost => Volatile.Read(ref armed) == 0;

        public override Request CreateRequest() => inner.CreateRequest();

        public override void Process(HttpMessage message)
        {
            inner.Process(message);
            LoseFirst(message);
        }

        public override async ValueTask ProcessAsync(HttpMessage message)
        {
            await inner.ProcessAsync(message);
            LoseFirst(message);
        }

        private void LoseFirst(HttpMessage message)
        {
            if (message.Request.Uri.Path.EndsWith("$batch", StringComparison.Ordinal) && Interlocked.Exchange(ref armed, 0) == 1)
            {
                throw new IOException("the connection broke before the reply arrived");
            }
        }
    }
}
