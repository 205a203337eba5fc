using CloudDelivery.Queue;
using static CloudDelivery.Tests.Queue.QueueRulesData;

namespace CloudDelivery.Tests.Queue;

/// <summary>Who gets which DSN after a transition, without storage.</summary>
public class DsnEligibilityTests
{
    private static RecipientTransition Transition(QueuedRecipientState state, bool delayDsnDue = false) =>
        new(state, 1, Submitted, delayDsnDue, delayDsnDue, "x", "y");

    public static TheoryData<QueuedRecipientState, bool, DsnKind> Kinds => new()
    {
        { QueuedRecipientState.Delivered, false, DsnKind.None },
        { QueuedRecipientState.Failed, false, DsnKind.Failure },
        { QueuedRecipientState.Expired, false, DsnKind.Failure },
        { QueuedRecipientState.Queued, false, DsnKind.None },
        { QueuedRecipientState.Queued, true, DsnKind.Delay },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void An_ordinary_sender_gets_a_dsn_for_failure_expiry_and_the_first_long_delay(QueuedRecipientState state, bool delayDsnDue, DsnKind expected)
    {
        Assert.Equal(expected, DsnEligibility.Of(Recipient(), Transition(state, delayDsnDue)));
        Assert.Equal(expected, DsnEligibility.KindOf(Transition(state, delayDsnDue)));
    }

    public static TheoryData<string, bool, bool> Silent => new()
    {
        { string.Empty, false, false }, // the null sender (RFC 5321 §4.5.5)
        { "sender@sender.example", true, false }, // a DSN about a DSN (RFC 3464 §2)
        { "sender@sender.example", false, true }, // a TLSRPT report
    };

    [Theory]
    [MemberData(nameof(Silent))]
    public void The_null_sender_a_dsn_and_a_tls_report_get_none(string sender, bool isDsn, bool isTlsReport)
    {
        var recipient = Recipient(sender: sender, isDsn: isDsn, isTlsReport: isTlsReport);

        Assert.False(DsnEligibility.MayNotify(recipient));
        Assert.Equal(DsnKind.None, DsnEligibility.Of(recipient, Transition(QueuedRecipientState.Failed)));
        Assert.Equal(DsnKind.None, DsnEligibility.Of(recipient, Transition(QueuedRecipientState.Expired)));
        Assert.Equal(DsnKind.None, DsnEligibility.Of(recipient, Transition(QueuedRecipientState.Queued, delayDsnDue: true)));
    }

    [Fact]
    public void An_ordinary_sender_may_be_notified()
    {
        Assert.True(DsnEligibility.MayNotify(Recipient()));
    }
}
