using System.Net;
using CloudDelivery.Shaping;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Delivery;

/// <summary>
/// Traffic shaping around one host of the host loop: the budget (recipient-domain rule, else MX host suffix,
/// else the domain's own) is decided per host, because a domain's hosts may belong to different providers.
/// </summary>
public sealed partial class DeliveryEngine
{
    /// <summary>The engine's traffic shaper: its budgets are shared by every delivery run of this engine.</summary>
    public TrafficShaper Shaper => shaper;

    /// <summary>
    /// One host under its budget: nothing is dialled while the budget is paused or every connection it allows
    /// is in use (the run's messages come back Deferred); a throttling refusal of the session pauses the
    /// budget and defers what is left; when a connection reached its messages-per-connection limit, another
    /// connection takes the rest.
    /// </summary>
    private async Task<HostAttempt> DeliverHostShapedAsync(
        AttemptState state, DestinationSet destinationSet, DeliveryHost host, MtaStsFacts mtaStsFacts, List<PendingRecipient> pending, TlsRptResult domainResult, CancellationToken cancellationToken)
    {
        var budget = shaper.BudgetFor(state.Request.Destination.Name?.Ascii ?? state.Request.Destination.ToString(), host.Name?.Ascii);
        while (true)
        {
            var shaping = new HostShaping(budget, options.Classifier);
            if (budget.Paused() is { } paused)
            {
                return Held(state, shaping, pending, host, paused);
            }
            using var lease = budget.TryOpenConnection();
            if (lease is null)
            {
                return Held(state, shaping, pending, host, budget.ConnectionsBusy);
            }
            state.Shaping = shaping;
            var attempt = await DeliverHostWithFallbackAsync(state, destinationSet, host, mtaStsFacts, pending, domainResult, cancellationToken);
            state.Shaping = HostShaping.Unshaped;
            if (attempt.Error is { } error && shaping.IsThrottling(error.Reply, error.Local))
            {
                // Refused at greeting or EHLO with a throttling reply (RFC 5321 §3.8 allows 421 there).
                var pause = shaping.NoteThrottled();
                shaping.DeferThrottled(state.MainOutbox, attempt.StillPending, [], host.Display, attempt.Address, error.Reply, pause, error.Tls);
                attempt.StillPending = [];
                attempt.Error = null;
                return attempt;
            }
            if (attempt.Error is not null || attempt.StillPending.Count == 0 || !shaping.ConnectionCapReached)
            {
                return attempt;
            }
            // Every message the connection took has its result (none failed the host): a fresh one takes the rest.
            pending = attempt.StillPending;
        }
    }

    private static HostAttempt Held(AttemptState state, HostShaping shaping, List<PendingRecipient> pending, DeliveryHost host, ShapingHold hold)
    {
        shaping.Defer(state.MainOutbox, pending, host.Display, null, hold, TlsPosture.None);
        return new HostAttempt { StillPending = [] };
    }
}

/// <summary>
/// The traffic-shaping budget of the host a delivery run is at, as its sessions use it: whether a session may
/// take another message, a permit before each MAIL FROM, whether a reply is a receiver throttling us (asked
/// of the configured <see cref="BounceClassifier"/> only), and the Deferred results for what is held back.
/// </summary>
internal sealed class HostShaping(ShapingBudget? budget, BounceClassifier classifier)
{
    /// <summary>No budget: the smarthost path, and a session outside the host loop.</summary>
    public static HostShaping Unshaped { get; } = new(null, BounceClassifier.Default);

    private volatile bool connectionCapReached;

    /// <summary>A session stopped taking messages at the budget's messages per connection.</summary>
    public bool ConnectionCapReached => connectionCapReached;

    /// <summary>True while a session that has taken <paramref name="taken"/> messages may take one more.</summary>
    public bool MayTakeAnother(int taken)
    {
        if (budget?.Limits.MessagesPerConnection is { } cap && taken >= cap)
        {
            connectionCapReached = true;
            return false;
        }
        return true;
    }

    /// <summary>A lease for one more connection (a parallel session); null when the budget allows no more.</summary>
    public IDisposable? TryOpenConnection() => budget is null ? NoConnectionLimit : budget.TryOpenConnection();

    private static readonly IDisposable NoConnectionLimit = new NoLease();

    private sealed class NoLease : IDisposable
    {
        public void Dispose()
        {
        }
    }

    /// <summary>Null when the next message may be sent, else why it and the rest of the run wait.</summary>
    public ValueTask<ShapingHold?> AdmitAsync(CancellationToken cancellationToken) =>
        budget is null ? ValueTask.FromResult<ShapingHold?>(null) : budget.AcquireMessageAsync(cancellationToken);

    /// <summary>A reply from the server that asks us to slow down (421 4.7.28, 450 4.2.1, Microsoft's 451 4.7.650, …).</summary>
    public bool IsThrottling(SmtpReply reply, LocalFailure local = LocalFailure.None) =>
        budget is not null && local == LocalFailure.None && !reply.IsPositive && reply.Code != 0 && classifier.Classify(reply, local) == BounceCategory.Throttled;

    /// <summary>The budget's throttling response (see <see cref="ShapingBudget.NoteThrottled"/>); the pause it started.</summary>
    public TimeSpan NoteThrottled() => budget?.NoteThrottled() ?? TimeSpan.Zero;

    /// <summary>A message was accepted: the budget wins back part of its rate.</summary>
    public void NoteClean() => budget?.NoteClean();

    /// <summary>
    /// Records <paramref name="recipients"/> Deferred, not attempted, with a RetryAfter per message spread
    /// over the budget's rate (or the hold's own for a pause or busy connections).
    /// </summary>
    public void Defer(AttemptState.Outbox outbox, IEnumerable<PendingRecipient> recipients, string? host, IPAddress? address, ShapingHold hold, TlsPosture tls)
    {
        var list = recipients.ToList();
        if (list.Count == 0 || budget is null)
        {
            return;
        }
        var reply = HeldReply(hold);
        foreach (var (message, position) in list.GroupBy(r => r.Message).Select((g, i) => (g, i)))
        {
            var retryAfter = budget.SpreadRetryAfter(hold, position);
            foreach (var recipient in message)
            {
                outbox.Defer(recipient, host, address, reply, retryAfter, tls);
            }
        }
        budget.NoteDeferred(hold, list.Count);
    }

    /// <summary>
    /// A receiver throttled us: <paramref name="throttled"/> keep its reply, the rest of the run is held
    /// back with a reply naming it; all come back when the pause ends, without spending an attempt.
    /// </summary>
    public void DeferThrottled(AttemptState.Outbox outbox, IEnumerable<PendingRecipient> throttled, IEnumerable<PendingRecipient> rest, string host, IPAddress? address, SmtpReply reply, TimeSpan pause, TlsPosture tls)
    {
        if (budget is null)
        {
            return;
        }
        var count = 0;
        foreach (var recipient in throttled)
        {
            outbox.Defer(recipient, host, address, reply, pause, tls);
            count++;
        }
        var held = DeliveryFailure.Of(DeliveryFailureKind.HeldByTrafficShaping, $"held back: {host} asked us to slow down ({reply}); traffic-shaping budget {budget.Key} paused for {pause:c}").Reply;
        foreach (var recipient in rest)
        {
            outbox.Defer(recipient, host, address, held, pause, tls);
            count++;
        }
        budget.NoteDeferred(new ShapingHold(ShapingHoldReason.Paused, pause), count);
    }

    private SmtpReply HeldReply(ShapingHold hold)
    {
        var why = hold.Reason switch
        {
            ShapingHoldReason.Rate => "its messages per minute or hour are spent for now",
            ShapingHoldReason.Connections => "every connection it allows is in use",
            _ => "it is paused after a receiver asked us to slow down",
        };
        return DeliveryFailure.Of(DeliveryFailureKind.HeldByTrafficShaping, $"held back by traffic-shaping budget {budget!.Key}: {why}; retry in {hold.RetryAfter:c}").Reply;
    }
}
