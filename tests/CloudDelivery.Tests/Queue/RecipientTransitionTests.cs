using CloudDelivery.Delivery;
using CloudDelivery.Queue;
using CloudDelivery.Smtp;
using static CloudDelivery.Tests.Queue.QueueRulesData;

namespace CloudDelivery.Tests.Queue;

/// <summary>From a delivery result to the recipient's next state, without storage.</summary>
public class RecipientTransitionTests
{
    private static readonly DateTimeOffset Now = Submitted.AddMinutes(30);

    [Fact]
    public void An_accepted_recipient_is_delivered()
    {
        var transition = RecipientTransition.Of(Recipient(), Result(RecipientStatus.Delivered, new SmtpReply(250, "2.0.0", "ok")), Now, ExactSchedule);

        Assert.Equal(new RecipientTransition(QueuedRecipientState.Delivered, 1, Submitted, false, false, "delivered", "250 2.0.0 ok at mx.dest.example"), transition);
    }

    [Fact]
    public void A_permanent_refusal_fails_the_recipient_at_once()
    {
        var transition = RecipientTransition.Of(Recipient(attempts: 2), Result(RecipientStatus.Permanent, new SmtpReply(550, "5.1.1", "no such user")), Now, ExactSchedule);

        Assert.Equal(new RecipientTransition(QueuedRecipientState.Failed, 3, Submitted, false, false, "failed", "550 5.1.1 no such user at mx.dest.example"), transition);
    }

    [Fact]
    public void A_temporary_failure_is_retried_after_the_schedule_delay()
    {
        var transition = RecipientTransition.Of(Recipient(attempts: 1), Temporary(), Now, ExactSchedule);

        var next = Now + TimeSpan.FromSeconds(900);
        Assert.Equal(new RecipientTransition(QueuedRecipientState.Queued, 2, next, false, false, "delayed", $"attempt 2: 451 4.3.0 try again later at mx.dest.example; next attempt {next:u}"), transition);
    }

    [Fact]
    public void A_result_without_a_host_names_none()
    {
        var transition = RecipientTransition.Of(Recipient(), Result(RecipientStatus.Permanent, new SmtpReply(550, "5.1.10", "null MX"), host: null), Now, ExactSchedule);

        Assert.Equal("550 5.1.10 null MX", transition.EventDetail);
    }

    [Fact]
    public void The_attempt_before_the_last_is_still_retried_and_the_last_expires()
    {
        var beforeLast = RecipientTransition.Of(Recipient(attempts: 6), Temporary(), Now, ExactSchedule);
        var last = RecipientTransition.Of(Recipient(attempts: 7), Temporary(), Now, ExactSchedule);

        Assert.Equal(QueuedRecipientState.Queued, beforeLast.State);
        Assert.Equal(7, beforeLast.Attempts);
        Assert.Equal(new RecipientTransition(QueuedRecipientState.Expired, 8, Submitted, false, false, "expired", "gave up after 8 attempts: 451 4.3.0 try again later at mx.dest.example"), last);
    }

    [Fact]
    public void Expiry_follows_the_configured_maximum()
    {
        var schedule = new RetrySchedule { JitterSeconds = 0, MaxAttempts = 2 };

        Assert.Equal(QueuedRecipientState.Queued, RecipientTransition.Of(Recipient(attempts: 0), Temporary(), Now, schedule).State);
        Assert.Equal(QueuedRecipientState.Expired, RecipientTransition.Of(Recipient(attempts: 1), Temporary(), Now, schedule).State);
    }

    [Fact]
    public void The_delay_dsn_is_due_once_at_the_fifth_failed_attempt()
    {
        var fourth = RecipientTransition.Of(Recipient(attempts: 3), Temporary(), Now, ExactSchedule);
        var fifth = RecipientTransition.Of(Recipient(attempts: 4), Temporary(), Now, ExactSchedule);
        var sixth = RecipientTransition.Of(fifth.AppliedTo(Recipient(attempts: 4)), Temporary(), Now, ExactSchedule);

        Assert.False(fourth.DelayDsnDue);
        Assert.False(fourth.DelayDsnSent);
        Assert.True(fifth.DelayDsnDue);
        Assert.True(fifth.DelayDsnSent);
        Assert.False(sixth.DelayDsnDue);
        Assert.True(sixth.DelayDsnSent);
    }

    [Fact]
    public void A_recipient_first_failing_late_still_gets_its_delay_dsn()
    {
        // A record whose schedule changed under it (more attempts than the threshold, no DSN yet).
        var transition = RecipientTransition.Of(Recipient(attempts: 5), Temporary(), Now, ExactSchedule);

        Assert.True(transition.DelayDsnDue);
    }

    [Fact]
    public void Expiry_owes_no_delay_dsn_even_when_none_was_sent()
    {
        var transition = RecipientTransition.Of(Recipient(attempts: 7), Temporary(), Now, ExactSchedule);

        Assert.False(transition.DelayDsnDue);
        Assert.False(transition.DelayDsnSent);
    }

    [Fact]
    public void Applied_to_the_recipient_the_transition_moves_state_attempts_and_next_attempt()
    {
        var recipient = Recipient(attempts: 4);
        var transition = RecipientTransition.Of(recipient, Temporary(), Now, ExactSchedule);

        var after = transition.AppliedTo(recipient);

        Assert.Equal(recipient with { Attempts = 5, NextAttemptAt = Now + TimeSpan.FromSeconds(450 * 16), DelayDsnSent = true }, after);
    }

    [Fact]
    public void The_next_attempt_carries_the_schedule_jitter()
    {
        var schedule = new RetrySchedule { JitterSource = new Random(3) };

        var next = RecipientTransition.Of(Recipient(), Temporary(), Now, schedule).NextAttemptAt;

        Assert.InRange(next, Now + TimeSpan.FromSeconds(445), Now + TimeSpan.FromSeconds(454));
    }
}

/// <summary>Deferrals: traffic shaping or a receiver's throttling reply holds a recipient back without spending its retry budget.</summary>
public class DeferralTransitionTests
{
    private static readonly DateTimeOffset Now = Submitted.AddMinutes(30);

    private static readonly SmtpReply GmailRateLimited = new(421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.");

    private static RecipientResult Deferred(SmtpReply reply, TimeSpan? retryAfter, string? host = "mx.dest.example") =>
        Result(RecipientStatus.Deferred, reply, host) with { RetryAfter = retryAfter };

    [Fact]
    public void A_throttling_reply_keeps_the_recipient_queued_without_spending_an_attempt()
    {
        var transition = RecipientTransition.Of(Recipient(attempts: 3), Deferred(GmailRateLimited, TimeSpan.FromMinutes(4)), Now, ExactSchedule);

        var next = Now + TimeSpan.FromMinutes(4);
        Assert.Equal(new RecipientTransition(QueuedRecipientState.Queued, 3, next, false, false, "throttled", $"throttled by mx.dest.example: {GmailRateLimited}; next attempt {next:u}"), transition);
        Assert.Equal(DsnKind.None, DsnEligibility.KindOf(transition));
    }

    [Fact]
    public void A_recipient_the_shaper_held_back_untried_is_deferred_not_throttled()
    {
        var heldBack = Deferred(new SmtpReply(451, "4.4.5", "rate budget for gmail.com spent"), TimeSpan.FromSeconds(20), host: null);

        var transition = RecipientTransition.Of(Recipient(), heldBack, Now, ExactSchedule);

        Assert.Equal("deferred", transition.EventType);
        Assert.Equal(0, transition.Attempts);
        Assert.Equal(Now + TimeSpan.FromSeconds(20), transition.NextAttemptAt);
    }

    [Fact]
    public void Deferrals_past_the_delay_dsn_threshold_owe_no_delay_dsn()
    {
        var transition = RecipientTransition.Of(Recipient(attempts: 6), Deferred(GmailRateLimited, TimeSpan.FromMinutes(1)), Now, ExactSchedule);

        Assert.False(transition.DelayDsnDue);
        Assert.False(transition.DelayDsnSent);
        Assert.Equal(6, transition.Attempts);
    }

    [Theory]
    [InlineData(null, 60)]
    [InlineData(0, 5)]
    [InlineData(-30, 5)]
    [InlineData(90, 90)]
    [InlineData(86400 * 3, 3600)]
    public void The_wait_has_a_default_a_floor_and_a_cap(int? retryAfterSeconds, int expectedSeconds)
    {
        var retryAfter = retryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;

        var transition = RecipientTransition.Of(Recipient(), Deferred(GmailRateLimited, retryAfter), Now, ExactSchedule);

        Assert.Equal(Now + TimeSpan.FromSeconds(expectedSeconds), transition.NextAttemptAt);
    }

    [Fact]
    public void A_deferral_after_the_whole_retry_schedule_expires_the_recipient_with_a_dsn()
    {
        var end = ExactSchedule.RetryUntil(Submitted);

        var justBefore = RecipientTransition.Of(Recipient(attempts: 1), Deferred(GmailRateLimited, null), end - TimeSpan.FromSeconds(1), ExactSchedule);
        var atTheEnd = RecipientTransition.Of(Recipient(attempts: 1), Deferred(GmailRateLimited, null), end, ExactSchedule);

        Assert.Equal(QueuedRecipientState.Queued, justBefore.State);
        Assert.Equal(QueuedRecipientState.Expired, atTheEnd.State);
        Assert.Equal(DsnKind.Failure, DsnEligibility.KindOf(atTheEnd));
        Assert.StartsWith($"gave up: still held back at {end:u}", atTheEnd.EventDetail);
    }

    [Fact]
    public void A_temporary_reply_that_is_not_a_deferral_still_spends_an_attempt()
    {
        var transition = RecipientTransition.Of(Recipient(attempts: 3), Result(RecipientStatus.Temporary, GmailRateLimited), Now, ExactSchedule);

        Assert.Equal(4, transition.Attempts);
        Assert.Equal("delayed", transition.EventType);
    }
}
