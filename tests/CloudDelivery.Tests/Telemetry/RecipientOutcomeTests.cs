using CloudDelivery.Addressing;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Delivery;
using CloudDelivery.Smtp;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>How a saved recipient outcome becomes the result, tls and reason tags.</summary>
public class RecipientOutcomeTests
{
    private static readonly DateTimeOffset Submitted = new(2026, 11, 30, 8, 0, 0, TimeSpan.Zero);

    private static RecipientOutcome Outcome(string state, SmtpReply reply, TlsPosture tls = TlsPosture.Opportunistic, LocalFailure local = LocalFailure.None, DateTimeOffset? now = null)
    {
        var record = new RecipientRecord { State = state, SubmittedAt = Submitted, Attempts = 8 };
        var result = new RecipientResult("m1", EmailAddress.Parse("r@example.org"), RecipientStatus.Temporary, "mx.example.org", null, reply, tls, local);
        return RecipientOutcome.Of(record, result, now ?? Submitted.AddHours(16));
    }

    [Fact]
    public void The_last_temporary_failure_is_expired_with_its_latency()
    {
        var outcome = Outcome(RecipientState.Expired, new SmtpReply(451, "4.2.2", "mailbox full"));

        Assert.Equal(new RecipientOutcome("expired", "opportunistic", "4.2", TimeSpan.FromHours(16)) { Category = "mailbox-full" }, outcome);
    }

    [Fact]
    public void A_deferral_has_no_latency_and_a_local_failure_names_its_kind()
    {
        var outcome = Outcome(RecipientState.Queued, new SmtpReply(0, null, "TLS handshake failed"), TlsPosture.None, LocalFailure.Tls);

        Assert.Equal(new RecipientOutcome("deferred", "none", "tls", null) { Category = "tls-policy" }, outcome);
    }

    [Theory]
    [InlineData(550, null, "5.0")]
    [InlineData(421, null, "4.0")]
    [InlineData(554, "5.7.30", "5.7")]
    [InlineData(550, "5.1.10", "5.1")]
    [InlineData(550, "garbage", "5.0")]
    public void The_reason_is_the_class_and_subject_of_the_reply(int code, string? enhanced, string reason)
    {
        Assert.Equal(reason, Outcome(RecipientState.Failed, new SmtpReply(code, enhanced, "refused")).Reason);
    }

    [Fact]
    public void A_delivery_has_no_reason()
    {
        var outcome = Outcome(RecipientState.Delivered, new SmtpReply(250, "2.0.0", "ok"), TlsPosture.Dane, now: Submitted.AddSeconds(3));

        Assert.Equal(new RecipientOutcome("delivered", "dane", string.Empty, TimeSpan.FromSeconds(3)), outcome);
    }
}
