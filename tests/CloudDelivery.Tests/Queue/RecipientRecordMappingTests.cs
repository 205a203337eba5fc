using System.Net;
using System.Text.Json;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Delivery;
using CloudDelivery.Messages;
using CloudDelivery.Queue;
using CloudDelivery.Smtp;

namespace CloudDelivery.Tests.Queue;

/// <summary>The table record's string columns and the engine's typed recipient, without Azurite.</summary>
public class RecipientRecordMappingTests
{
    [Theory]
    [InlineData("queued", QueuedRecipientState.Queued)]
    [InlineData("delivered", QueuedRecipientState.Delivered)]
    [InlineData("failed", QueuedRecipientState.Failed)]
    [InlineData("expired", QueuedRecipientState.Expired)]
    [InlineData("dropped", QueuedRecipientState.Dropped)]
    public void Every_state_column_maps_both_ways(string column, QueuedRecipientState state)
    {
        Assert.Equal(state, RecipientRecordMapping.StateOf(column));
        Assert.Equal(column, RecipientRecordMapping.StateColumn(state));
    }

    [Theory]
    [InlineData("default", TlsRequirement.Default)]
    [InlineData("requiretls", TlsRequirement.RequireTls)]
    [InlineData("tls-required-no", TlsRequirement.TlsRequiredNo)]
    public void Every_tls_requirement_column_maps_both_ways(string column, TlsRequirement requirement)
    {
        Assert.Equal(requirement, RecipientRecordMapping.TlsRequirementOf(column));
        Assert.Equal(column, RecipientRecordMapping.TlsRequirementColumn(requirement));
    }

    [Fact]
    public void An_unknown_tls_requirement_column_reads_as_the_default()
    {
        Assert.Equal(TlsRequirement.Default, RecipientRecordMapping.TlsRequirementOf(string.Empty));
    }

    [Fact]
    public void A_record_reads_as_its_typed_recipient()
    {
        var submitted = new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero);
        var record = new RecipientRecord
        {
            MessageId = "m1",
            Sender = "s@sender.example",
            Recipient = "r@dest.example",
            Body = RecipientRecord.InlineBodyMarker,
            TlsRequirement = "requiretls",
            IsDsn = true,
            IsTlsReport = true,
            State = RecipientState.Expired,
            Attempts = 8,
            SubmittedAt = submitted,
            NextAttemptAt = submitted.AddHours(1),
            DelayDsnSent = true,
        };

        Assert.Equal(new QueuedRecipient
        {
            MessageId = "m1",
            Sender = "s@sender.example",
            Recipient = "r@dest.example",
            BodyIdentity = "inline:m1",
            TlsRequirement = TlsRequirement.RequireTls,
            IsDsn = true,
            IsTlsReport = true,
            State = QueuedRecipientState.Expired,
            Attempts = 8,
            SubmittedAt = submitted,
            NextAttemptAt = submitted.AddHours(1),
            DelayDsnSent = true,
        }, record.ToQueued());
    }

    [Fact]
    public void Inline_bodies_of_different_messages_are_different_bodies_and_blobs_keep_their_name()
    {
        Assert.NotEqual(new RecipientRecord { MessageId = "m1", Body = "inline" }.ToQueued().BodyIdentity, new RecipientRecord { MessageId = "m2", Body = "inline" }.ToQueued().BodyIdentity);
        Assert.Equal("blob-7", new RecipientRecord { MessageId = "m1", Body = "blob-7" }.ToQueued().BodyIdentity);
    }

    [Fact]
    public void Applying_a_transition_writes_state_reply_host_dialled_addresses_and_event()
    {
        var now = new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero);
        var record = new RecipientRecord { MessageId = "m1", Recipient = "r@dest.example", Attempts = 4 };
        var result = new RecipientResult("m1", EmailAddress.Parse("r@dest.example"), RecipientStatus.Temporary, "mx.dest.example", null, new SmtpReply(451, "4.3.0", "later"));
        var transition = RecipientTransition.Of(record.ToQueued(), result, now, new RetrySchedule { JitterSeconds = 0 });
        var dialled = new Dictionary<string, List<IPAddress>> { ["mx.dest.example"] = [IPAddress.Parse("127.0.0.2")] };

        record.Apply(transition, result, now, dialled);

        Assert.Equal(RecipientState.Queued, record.State);
        Assert.Equal(5, record.Attempts);
        Assert.Equal(now + TimeSpan.FromSeconds(450 * 16), record.NextAttemptAt);
        Assert.True(record.DelayDsnSent);
        Assert.Equal(now, record.LastAttemptAt);
        Assert.Equal((451, "4.3.0", "later", "mx.dest.example"), (record.LastCode, record.LastEnhancedCode, record.LastText, record.LastHost));
        Assert.Equal(["127.0.0.2"], JsonSerializer.Deserialize<Dictionary<string, string[]>>(record.DialledAddresses!)!["mx.dest.example"]);
        var added = Assert.Single(record.EventList);
        Assert.Equal(new DeliveryEvent(now, "delayed", transition.EventDetail), added);
    }
}
