using CloudDelivery.Messages;
using CloudDelivery.Queue;
using static CloudDelivery.Tests.Queue.QueueRulesData;

namespace CloudDelivery.Tests.Queue;

/// <summary>Which queued recipients share one SMTP transaction, without storage.</summary>
public class MessageGroupingTests
{
    [Fact]
    public void Same_body_sender_and_tls_requirement_make_one_message()
    {
        var recipients = new[] { Recipient(recipient: "a@dest.example"), Recipient(recipient: "b@dest.example"), Recipient(recipient: "c@dest.example") };

        var group = Assert.Single(MessageGrouping.Group(recipients, r => r));

        Assert.Equal(new MessageKey("blob-1", "sender@sender.example", TlsRequirement.Default), group.Key);
        Assert.Equal(["a@dest.example", "b@dest.example", "c@dest.example"], group.Select(r => r.Recipient));
    }

    public static TheoryData<string, QueuedRecipient> Different => new()
    {
        { "body", Recipient(body: "blob-2", recipient: "b@dest.example") },
        { "sender", Recipient(sender: "other@sender.example", recipient: "b@dest.example") },
        { "null sender", Recipient(sender: string.Empty, recipient: "b@dest.example") },
        { "REQUIRETLS", Recipient(tls: TlsRequirement.RequireTls, recipient: "b@dest.example") },
        { "TLS-Required: No", Recipient(tls: TlsRequirement.TlsRequiredNo, recipient: "b@dest.example") },
    };

    [Theory]
    [MemberData(nameof(Different))]
    public void A_different_body_sender_or_tls_requirement_goes_apart(string difference, QueuedRecipient other)
    {
        var groups = MessageGrouping.Group([Recipient(recipient: "a@dest.example"), other], r => r);

        Assert.True(groups.Count == 2, difference);
        Assert.Equal(["a@dest.example"], groups[0].Select(r => r.Recipient));
        Assert.Equal(["b@dest.example"], groups[1].Select(r => r.Recipient));
    }

    [Fact]
    public void Two_messages_sharing_a_body_blob_are_one_transaction()
    {
        // The message id is not part of the key: what is sent is the body, the sender and the TLS requirement.
        var groups = MessageGrouping.Group([Recipient(messageId: "m1", recipient: "a@dest.example"), Recipient(messageId: "m2", recipient: "b@dest.example")], r => r);

        Assert.Single(groups);
    }

    [Fact]
    public void Groups_keep_the_order_of_first_appearance_and_carry_the_items()
    {
        var items = new[] { ("x", Recipient(body: "blob-2")), ("y", Recipient(body: "blob-1")), ("z", Recipient(body: "blob-2")) };

        var groups = MessageGrouping.Group(items, item => item.Item2);

        Assert.Equal(["blob-2", "blob-1"], groups.Select(g => g.Key.BodyIdentity));
        Assert.Equal(["x", "z"], groups[0].Select(i => i.Item1));
    }
}
