using CloudDelivery.Delivery;
using CloudDelivery.Smtp;

namespace CloudDelivery.Tests.Delivery;

/// <summary>The table of named failures: what each kind records, decided in one place (RFC 3463 codes).</summary>
public class DeliveryFailureTests
{
    [Theory]
    [InlineData(DeliveryFailureKind.NotAttempted, 451, "4.4.0", false, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.HeldByTrafficShaping, 451, "4.4.5", false, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.DestinationTemporary, 451, "4.4.3", false, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.NoSuchDomain, 550, "5.1.2", true, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.DestinationPermanent, 550, "5.1.10", true, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.NullMx, 550, "5.1.10", true, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.NoMxOrAddress, 550, "5.1.2", true, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.MtaStsUnavailable, 451, "4.7.5", false, LocalFailure.Policy)]
    [InlineData(DeliveryFailureKind.MxNotInPolicy, 451, "4.7.5", false, LocalFailure.Policy)]
    [InlineData(DeliveryFailureKind.RequireTlsUnsatisfiableHost, 554, "5.7.30", false, LocalFailure.Policy)]
    [InlineData(DeliveryFailureKind.RequireTlsUnsatisfiableDomain, 554, "5.7.30", true, LocalFailure.Policy)]
    [InlineData(DeliveryFailureKind.RequireTlsUnsupportedByServer, 554, "5.7.30", false, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.HostDnsFailed, 451, "4.4.4", false, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.HostHasNoAddresses, 451, "4.4.1", false, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.DialFailed, 451, "4.4.1", false, LocalFailure.Connection)]
    [InlineData(DeliveryFailureKind.DialRefusedByPolicy, 451, "4.4.1", false, LocalFailure.Policy)]
    [InlineData(DeliveryFailureKind.ConnectTimeout, 451, "4.4.1", false, LocalFailure.Timeout)]
    [InlineData(DeliveryFailureKind.ConnectionLost, 451, "4.4.2", false, LocalFailure.Connection)]
    [InlineData(DeliveryFailureKind.TlsFailed, 0, null, false, LocalFailure.Tls)]
    [InlineData(DeliveryFailureKind.SessionBroken, 0, null, false, LocalFailure.Connection)]
    [InlineData(DeliveryFailureKind.SessionTimedOut, 0, null, false, LocalFailure.Timeout)]
    [InlineData(DeliveryFailureKind.PeerMissedDeadline, 0, "4.4.2", false, LocalFailure.Timeout)]
    [InlineData(DeliveryFailureKind.PeerOversteppedLimit, 0, "4.4.2", false, LocalFailure.Connection)]
    [InlineData(DeliveryFailureKind.SmtpUtf8Unsupported, 554, "5.6.7", false, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.MessageTooLarge, 552, "5.3.4", true, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.SmarthostDnsFailed, 451, "4.4.3", false, LocalFailure.Dns)]
    [InlineData(DeliveryFailureKind.SmarthostDialFailed, 451, "4.4.1", false, LocalFailure.Connection)]
    [InlineData(DeliveryFailureKind.SmarthostConnectTimeout, 451, "4.4.1", false, LocalFailure.Timeout)]
    [InlineData(DeliveryFailureKind.SmarthostConnectionLost, 451, "4.4.2", false, LocalFailure.Connection)]
    [InlineData(DeliveryFailureKind.SmarthostLoginFailed, 451, "4.7.0", false, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.UnencodableSender, 550, "5.1.7", true, LocalFailure.None)]
    [InlineData(DeliveryFailureKind.UnencodableRecipient, 550, "5.1.3", true, LocalFailure.None)]
    public void Each_kind_fixes_its_reply_permanence_and_local_reason(DeliveryFailureKind kind, int code, string? enhanced, bool permanent, LocalFailure local)
    {
        var failure = DeliveryFailure.Of(kind, "why");

        Assert.Equal(new SmtpReply(code, enhanced, "why"), failure.Reply);
        Assert.Equal(permanent, failure.Permanent);
        Assert.Equal(permanent ? RecipientStatus.Permanent : RecipientStatus.Temporary, failure.Status);
        Assert.Equal(local, failure.Local);
        Assert.Equal(TlsPosture.None, failure.Tls);
    }

    [Fact]
    public void Every_kind_is_either_in_the_table_or_carries_the_servers_reply()
    {
        foreach (var kind in Enum.GetValues<DeliveryFailureKind>())
        {
            var failure = DeliveryFailure.CarriesServerReply(kind)
                ? DeliveryFailure.Refusal(kind, new SmtpReply(421, "4.3.2", "busy"))
                : DeliveryFailure.Of(kind, "why");
            Assert.Equal(kind, failure.Kind);
        }
    }

    [Theory]
    [InlineData(DeliveryFailureKind.ServerReply, 550, true)]
    [InlineData(DeliveryFailureKind.ServerReply, 451, false)]
    [InlineData(DeliveryFailureKind.ServerRefused, 554, true)]
    [InlineData(DeliveryFailureKind.StartTlsRefused, 454, false)]
    public void A_refusal_keeps_the_servers_reply_and_is_permanent_only_for_5xx(DeliveryFailureKind kind, int code, bool permanent)
    {
        var reply = new SmtpReply(code, null, "no");

        var failure = DeliveryFailure.Refusal(kind, reply);

        Assert.Same(reply, failure.Reply);
        Assert.Equal(permanent, failure.Permanent);
        Assert.Equal(LocalFailure.None, failure.Local);
        Assert.Throws<ArgumentException>(() => DeliveryFailure.Of(kind, "made up"));
        Assert.Throws<ArgumentException>(() => DeliveryFailure.Refusal(DeliveryFailureKind.DialFailed, reply));
    }

    [Fact]
    public void Only_tls_kinds_allow_the_plaintext_retry_and_only_a_session_refusal_is_the_hosts()
    {
        Assert.True(DeliveryFailure.Of(DeliveryFailureKind.TlsFailed, "x").IsTlsFailure);
        Assert.True(DeliveryFailure.Refusal(DeliveryFailureKind.StartTlsRefused, new SmtpReply(454, null, "x")).IsTlsFailure);
        Assert.False(DeliveryFailure.Of(DeliveryFailureKind.SessionBroken, "x").IsTlsFailure);
        Assert.True(DeliveryFailure.Refusal(DeliveryFailureKind.ServerRefused, new SmtpReply(554, null, "x")).HostRefused);
        Assert.False(DeliveryFailure.Refusal(DeliveryFailureKind.ServerReply, new SmtpReply(554, null, "x")).HostRefused);
    }

    [Fact]
    public void Requiretls_is_unmet_by_its_own_kinds_and_by_a_servers_5_7_30()
    {
        Assert.True(DeliveryFailure.Of(DeliveryFailureKind.RequireTlsUnsatisfiableHost, "x").LeavesRequireTlsUnmet);
        Assert.True(DeliveryFailure.Of(DeliveryFailureKind.RequireTlsUnsupportedByServer, "x").LeavesRequireTlsUnmet);
        Assert.True(DeliveryFailure.Refusal(DeliveryFailureKind.ServerReply, new SmtpReply(550, "5.7.30", "x")).LeavesRequireTlsUnmet);
        Assert.False(DeliveryFailure.Refusal(DeliveryFailureKind.ServerReply, new SmtpReply(550, "5.7.1", "x")).LeavesRequireTlsUnmet);
        Assert.False(DeliveryFailure.Of(DeliveryFailureKind.MxNotInPolicy, "x").LeavesRequireTlsUnmet);
    }

    [Theory]
    [InlineData(SmtpSessionFailure.StartTlsNotOffered, DeliveryFailureKind.TlsFailed)]
    [InlineData(SmtpSessionFailure.TlsHandshakeFailed, DeliveryFailureKind.TlsFailed)]
    [InlineData(SmtpSessionFailure.ConnectionFailed, DeliveryFailureKind.SessionBroken)]
    [InlineData(SmtpSessionFailure.ConnectionTimedOut, DeliveryFailureKind.SessionTimedOut)]
    [InlineData(SmtpSessionFailure.DeadlineOverstepped, DeliveryFailureKind.PeerMissedDeadline)]
    [InlineData(SmtpSessionFailure.LimitOverstepped, DeliveryFailureKind.PeerOversteppedLimit)]
    [InlineData(SmtpSessionFailure.SmtpUtf8Unsupported, DeliveryFailureKind.SmtpUtf8Unsupported)]
    [InlineData(SmtpSessionFailure.RequireTlsUnsupported, DeliveryFailureKind.RequireTlsUnsupportedByServer)]
    [InlineData(SmtpSessionFailure.MessageTooLarge, DeliveryFailureKind.MessageTooLarge)]
    [InlineData(SmtpSessionFailure.LoginFailed, DeliveryFailureKind.SmarthostLoginFailed)]
    public void A_session_failure_of_our_own_becomes_its_kind_with_the_sessions_words(SmtpSessionFailure session, DeliveryFailureKind kind)
    {
        var failure = DeliveryFailure.FromSession(new SmtpSessionException(session, "what happened", "message"));

        Assert.Equal(kind, failure.Kind);
        Assert.Equal("what happened", failure.Reply.Text);
    }

    [Theory]
    [InlineData(SmtpSessionFailure.StartTlsRefused, DeliveryFailureKind.StartTlsRefused)]
    [InlineData(SmtpSessionFailure.SessionRefused, DeliveryFailureKind.ServerRefused)]
    [InlineData(SmtpSessionFailure.CommandRefused, DeliveryFailureKind.ServerReply)]
    public void A_session_refusal_becomes_its_kind_with_the_servers_reply(SmtpSessionFailure session, DeliveryFailureKind kind)
    {
        var reply = new SmtpReply(554, "5.7.1", "go away");

        var failure = DeliveryFailure.FromSession(new SmtpSessionException(session, reply, "message"));

        Assert.Equal(kind, failure.Kind);
        Assert.Same(reply, failure.Reply);
        Assert.True(failure.Permanent);
    }

    [Theory]
    [InlineData(1, true, false)]
    [InlineData(2, true, true)]
    [InlineData(1, false, true)]
    public void A_first_attempts_policy_rejection_by_a_dual_stack_host_is_temporary(int attempt, bool dualStack, bool permanent)
    {
        var failure = DeliveryFailure.Refusal(DeliveryFailureKind.ServerReply, new SmtpReply(550, "5.7.1", "blocked"));

        Assert.Equal(permanent, failure.ForAttempt(attempt, dualStack).Permanent);
    }
}
