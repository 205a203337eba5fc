using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Smtp;

namespace CloudDelivery.Tests.Delivery;

/// <summary>Which category a failure falls in, and which failures suppress the address.</summary>
public class BounceClassificationTests
{
    public static TheoryData<string, BounceCategory> ServerReplies => new()
    {
        { "550 5.1.1 no such user", BounceCategory.BadMailbox },
        { "550 5.1.2 no such domain", BounceCategory.BadDomain },
        { "556 5.1.10 recipient address has null MX", BounceCategory.BadDomain },
        { "550 5.2.1 account disabled", BounceCategory.BadMailbox },
        { "450 4.2.1 receiving mail too quickly", BounceCategory.Throttled },
        { "552 5.2.2 mailbox full", BounceCategory.MailboxFull },
        { "552 5.3.4 message too big", BounceCategory.MessageTooBig },
        { "550 5.7.1 rejected by policy", BounceCategory.PolicyBlock },
        { "550 5.7.26 unauthenticated mail", BounceCategory.Authentication },
        { "421 4.7.28 rate limited", BounceCategory.Throttled },
        { "554 5.7.30 REQUIRETLS needed", BounceCategory.TlsPolicy },
        { "554 5.6.0 content rejected", BounceCategory.ContentRejected },
        { "451 4.3.0 try later", BounceCategory.Network },
        { "451 try later", BounceCategory.Network },
        { "552 too big", BounceCategory.MessageTooBig },
        { "554 go away", BounceCategory.Other },
    };

    [Theory]
    [MemberData(nameof(ServerReplies))]
    public void A_server_reply_is_classified_by_its_enhanced_code_else_its_basic_code(string reply, BounceCategory expected)
    {
        var code = int.Parse(reply[..3], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(expected, BounceClassification.Of(SmtpReply.FromServer(code, reply[4..])));
    }

    [Fact]
    public void The_engines_own_failures_are_classified_by_what_failed()
    {
        Assert.Equal(BounceCategory.Network, BounceClassification.Of(new SmtpReply(451, "4.4.1", "connection refused"), LocalFailure.Connection));
        Assert.Equal(BounceCategory.Network, BounceClassification.Of(new SmtpReply(451, "4.4.3", "SERVFAIL"), LocalFailure.Dns));
        Assert.Equal(BounceCategory.BadDomain, BounceClassification.Of(new SmtpReply(550, "5.1.2", "NXDOMAIN"), LocalFailure.Dns));
        Assert.Equal(BounceCategory.TlsPolicy, BounceClassification.Of(new SmtpReply(451, "4.7.5", "certificate"), LocalFailure.Tls));
        Assert.Equal(BounceCategory.TlsPolicy, BounceClassification.Of(new SmtpReply(554, "5.7.30", "REQUIRETLS"), LocalFailure.Policy));
    }

    [Theory]
    [InlineData(RecipientStatus.Permanent, 550, "5.1.1", true)]
    [InlineData(RecipientStatus.Permanent, 550, "5.1.2", true)]
    [InlineData(RecipientStatus.Permanent, 556, "5.1.10", true)]
    [InlineData(RecipientStatus.Temporary, 450, "4.1.1", false)] // a temporary "no such user" may be a directory outage
    [InlineData(RecipientStatus.Permanent, 550, "5.7.1", false)] // policy
    [InlineData(RecipientStatus.Permanent, 554, "5.7.30", false)] // TLS
    [InlineData(RecipientStatus.Permanent, 554, "5.6.0", false)] // content
    [InlineData(RecipientStatus.Permanent, 550, "5.7.28", false)] // rate
    [InlineData(RecipientStatus.Delivered, 250, "2.1.5", false)]
    public void Only_a_permanent_nonexistent_mailbox_or_domain_suppresses_the_address(RecipientStatus status, int code, string enhanced, bool suppresses)
    {
        var recipient = EmailAddress.Unchecked("user@example.com", NextHop.Parse("example.com"));
        var result = new RecipientResult("m", recipient, status, "mx.example.com", null, new SmtpReply(code, enhanced, "text"));
        Assert.Equal(suppresses, BounceClassification.SuppressesAddress(result));
    }
}
