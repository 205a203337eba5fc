using CloudDelivery.Dialing;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Delivery;

/// <summary>Further sessions to a host that accepted one, sharing its messages.</summary>
public sealed partial class DeliveryEngine
{
    /// <summary>
    /// Messages each further session should have before it is worth its connection and handshakes: a
    /// delivery of up to this many messages uses one session; each further batch of this many adds one, up to
    /// <see cref="DeliveryEngineOptions.MaxSessionsPerHost"/>.
    /// </summary>
    public const int MessagesPerExtraSession = 4;

    private int ExtraSessionsFor(int messages) => Math.Clamp((messages - 1) / MessagesPerExtraSession, 0, Math.Max(0, options.MaxSessionsPerHost - 1));

    /// <summary>
    /// Runs the open first session of a host and, when there is enough work, further sessions beside it;
    /// returns their merged result. The host has accepted one session: more may share the work. They take
    /// messages from the same list. A further session that cannot open is ignored (the host was judged by
    /// opening this one); once open, each message's transactions decide its own result.
    /// </summary>
    private async Task<SessionResult> RunSessionsAsync(
        AttemptState state, SessionTarget target, SmtpSession session, List<PendingRecipient> pending, TlsRptResult domainResult, TlsRptResult hostTlsResult, CancellationToken cancellationToken)
    {
        var work = new SessionWork(pending, state.Shaping);
        // Extra sessions still dialling or greeting when nothing is left to take are called off: a host
        // that tarpits further connections must not hold a finished delivery for a whole timeout.
        using var stopOpening = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var extraSessions = Enumerable.Range(0, ExtraSessionsFor(work.Count))
            .Select(_ => RunExtraSessionAsync(state, work, target, domainResult.Policy, hostTlsResult.Policy, stopOpening.Token, cancellationToken))
            .ToArray();
        SessionResult first;
        try
        {
            first = await Transactions.RunAsync(state.OpenOutbox(), session, PostureOf(session, target.EnforceMtaSts), work, target.Host, target.Address, target.DualStack, state.Request.Attempt, cancellationToken);
        }
        catch
        {
            // Results could not be recorded (or the run is being stopped): no session starts another
            // message, and none is left running behind the caller's back, whose lease ends with it.
            work.Abandon();
            await stopOpening.CancelAsync();
            try
            {
                await Task.WhenAll(extraSessions);
            }
            catch (Exception)
            {
                // The first session's failure is the one reported.
            }
            throw;
        }
        if (work.Count == 0)
        {
            await stopOpening.CancelAsync();
        }
        var (stillPending, sharedError, delivered, failed) = first;
        foreach (var extra in await Task.WhenAll(extraSessions))
        {
            // Each extra session counted its TLS outcomes apart (RFC 8460 counts sessions); added now, in one thread.
            domainResult.Merge(extra.DomainResult);
            hostTlsResult.Merge(extra.HostResult);
            stillPending.AddRange(extra.Sessions.StillPending);
            sharedError ??= extra.Sessions.SharedError;
            delivered += extra.Sessions.Delivered;
            failed += extra.Sessions.Failed;
        }
        // Messages no session could take (every one ended early) stay for the next host.
        stillPending.AddRange(work.TakeRest());
        return new SessionResult(stillPending, sharedError, delivered, failed);
    }

    private sealed record ExtraSessionResult(SessionResult Sessions, TlsRptResult DomainResult, TlsRptResult HostResult);

    /// <summary>
    /// One more session to a host that already accepted one, with the same address, TLS mode and
    /// verification. It takes messages from <paramref name="work"/> until none are left. A refusal (a
    /// server limiting connections answers 421) or a failed handshake ends it quietly: the other sessions
    /// go on with the rest, and the host is not judged by it.
    /// </summary>
    private async Task<ExtraSessionResult> RunExtraSessionAsync(
        AttemptState state,
        SessionWork work,
        SessionTarget target,
        TlsRptPolicy domainPolicy,
        TlsRptPolicy hostPolicy,
        CancellationToken stopOpening,
        CancellationToken cancellationToken)
    {
        var (host, address, plaintextRetry) = (target.Host, target.Address, target.PlaintextRetry);
        var domainResult = new TlsRptResult(domainPolicy);
        var hostResult = new TlsRptResult(hostPolicy);
        var nothing = new SessionResult([], null, 0, 0);
        var calledOff = new ExtraSessionResult(nothing, new TlsRptResult(domainPolicy), new TlsRptResult(hostPolicy));
        // Each session holds a connection of the host's traffic-shaping budget; none free, no extra session.
        using var connectionLease = work.Shaping.TryOpenConnection();
        if (connectionLease is null)
        {
            return calledOff;
        }
        DialResult dialled;
        try
        {
            dialled = await MxDialer.DialAsync([address], options.SmtpPort, stopOpening);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return calledOff;
        }
        if (dialled.Socket is not { } socket)
        {
            logger.LogDebug("Extra session to {Host} not opened: {Error}", host, dialled.LastFailure?.Reason);
            return new ExtraSessionResult(nothing, domainResult, hostResult);
        }
        SmtpSession session;
        try
        {
            session = await SmtpSession.ConnectAsync(socket, target.TlsName, target.Mode, target.Plan, target.SessionOptions, domainResult, hostResult, stopOpening);
        }
        catch (Exception e) when (stopOpening.IsCancellationRequested && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or SmtpSessionException)
        {
            // Called off while greeting or handshaking: not a session the host had a say in; nothing to count.
            socket.Dispose();
            return calledOff;
        }
        catch (SmtpSessionException e)
        {
            state.AddConnection(new ConnectionReport(host, address, null, CertificateVerification.None, null, plaintextRetry, e.Message));
            // Not a throttling signal for the budget: a host limiting connections answers further ones 421
            // ("too many connections"), and the session it accepted carries on. A host that really wants us
            // to slow down says so to that session, which pauses the budget then.
            logger.LogDebug("Extra session to {Host} refused: {Error}", host, e.Message);
            return new ExtraSessionResult(nothing, domainResult, hostResult);
        }
        await using (session)
        {
            state.AddConnection(Opened(host, address, session, plaintextRetry));
            try
            {
                var result = await Transactions.RunAsync(state.OpenOutbox(), session, PostureOf(session, target.EnforceMtaSts), work, host, address, target.DualStack, state.Request.Attempt, cancellationToken);
                return new ExtraSessionResult(result, domainResult, hostResult);
            }
            catch
            {
                work.Abandon(); // the other sessions finish the transaction they are in, and stop
                throw;
            }
        }
    }
}

/// <summary>The pending messages of one host attempt, taken one message at a time by its sessions.</summary>
internal sealed class SessionWork(IEnumerable<PendingRecipient> pending, HostShaping? shaping = null)
{
    /// <summary>The traffic-shaping budget the sessions spend.</summary>
    public HostShaping Shaping { get; } = shaping ?? HostShaping.Unshaped;

    private readonly System.Collections.Concurrent.ConcurrentQueue<List<PendingRecipient>> messages = new(pending.GroupBy(p => p.Message).Select(g => g.ToList()));

    private volatile bool abandoned;

    public int Count => messages.Count;

    public bool TryTake(out List<PendingRecipient> message)
    {
        message = [];
        return !abandoned && messages.TryDequeue(out message!);
    }

    /// <summary>A session failed in a way that ends the whole attempt: no session takes another message.</summary>
    public void Abandon() => abandoned = true;

    /// <summary>Whatever no session took.</summary>
    public List<PendingRecipient> TakeRest()
    {
        var rest = new List<PendingRecipient>();
        while (messages.TryDequeue(out var message))
        {
            rest.AddRange(message);
        }
        return rest;
    }
}
