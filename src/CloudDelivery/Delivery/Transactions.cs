using System.Net;
using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

internal sealed record SessionResult(List<PendingRecipient> StillPending, DeliveryFailure? SharedError, int Delivered, int Failed);

/// <summary>The SMTP transactions of one open session.</summary>
internal static class Transactions
{
    /// <summary>
    /// Sends messages taken from <paramref name="work"/> over an open session until none are left or the
    /// session ends: at most RCPTMAX recipients per transaction, a later recipient's 452/552 moved to the
    /// next transaction, results published (and recorded by the caller) right after each reply, before the
    /// next command. Returns what could not be concluded on this connection and why.
    /// </summary>
    public static async Task<SessionResult> RunAsync(
        AttemptState.Outbox outbox, SmtpSession session, TlsPosture tls, SessionWork work, string host, IPAddress dialled, bool dualStack, int attemptNumber, CancellationToken cancellationToken)
    {
        var stillPending = new List<PendingRecipient>();
        var delivered = 0;
        var failed = 0;
        DeliveryFailure? sharedError = null;
        var shaping = work.Shaping;
        var taken = 0;
        var throttled = false;
        // A session that is no longer usable takes nothing more: other sessions, or the next host, get the rest.
        while (!throttled && session.IsUsable && shaping.MayTakeAnother(taken) && work.TryTake(out var todo))
        {
            taken++;
            // Traffic shaping: a permit per message before its MAIL FROM; without one it and the rest of the run wait.
            if (await shaping.AdmitAsync(cancellationToken) is { } hold)
            {
                shaping.Defer(outbox, [.. todo, .. work.TakeRest()], host, dialled, hold, tls);
                await outbox.PublishAsync(cancellationToken);
                break;
            }
            var message = todo[0].Message;
            var firstTransaction = true;
            while (todo.Count > 0)
            {
                // RFC 9422 §4.2: no more recipients per transaction than the server's RCPTMAX.
                var count = session.RcptMax > 0 ? Math.Min(session.RcptMax, todo.Count) : todo.Count;
                var batch = todo.Take(count).ToList();
                var rest = todo.Skip(count).ToList();
                TransactionResult result;
                try
                {
                    result = await session.SendAsync(message, batch.Select(p => p.Recipient).ToArray(), cancellationToken);
                }
                catch (SmtpSessionException e)
                {
                    var failure = DeliveryFailure.FromSession(e).ForAttempt(attemptNumber, dualStack) with { Tls = tls };
                    if (shaping.IsThrottling(failure.Reply, failure.Local))
                    {
                        // MAIL FROM or DATA refused as too fast: this message and the rest wait out the pause, sent no further.
                        var pause = shaping.NoteThrottled();
                        shaping.DeferThrottled(outbox, batch, [.. rest, .. work.TakeRest()], host, dialled, failure.Reply, pause, tls);
                        await outbox.PublishAsync(cancellationToken);
                        throttled = true;
                        break;
                    }
                    if (firstTransaction && rest.Count == 0 && !failure.Permanent)
                    {
                        // The failure concerns the whole message: another host may do better.
                        stillPending.AddRange(batch);
                        sharedError = failure;
                    }
                    else
                    {
                        // A permanent refusal is this message's own result, decided here: carried along as the
                        // host's error it would also end messages that merely lost their connection, in this
                        // session or a parallel one.
                        outbox.Fail(batch, host, dialled, failure);
                        failed += batch.Count;
                    }
                    if (!session.IsUsable)
                    {
                        stillPending.AddRange(rest);
                        rest.Clear();
                    }
                    await outbox.PublishAsync(cancellationToken);
                    todo = rest;
                    firstTransaction = false;
                    continue;
                }
                var next = new List<PendingRecipient>();
                // As mox: only a refusal of the whole transaction counts as the host refusing us, and
                // may be made temporary for a dual-stack host (see Inspect).
                var allRefused = result.RecipientReplies.All(r => !r.IsPositive);
                var tooFast = new List<PendingRecipient>();
                SmtpReply? throttleReply = null;
                for (var i = 0; i < batch.Count; i++)
                {
                    var reply = result.RecipientReplies[i];
                    if (shaping.IsThrottling(reply))
                    {
                        tooFast.Add(batch[i]);
                        throttleReply ??= reply;
                    }
                    else if (i > 0 && reply.Code is 452 or 552 && !reply.IsPositive)
                    {
                        // "Too many recipients" for a later recipient: it goes into the next transaction
                        // (RFC 5321 §4.5.3.1.10, RFC 9422 §4.2).
                        next.Add(batch[i]);
                    }
                    else if (reply.IsPositive)
                    {
                        outbox.Complete(batch[i], RecipientStatus.Delivered, host, dialled, reply, tls);
                        delivered++;
                    }
                    else
                    {
                        var permanent = reply.IsPermanent && !(allRefused && DeliveryFailure.IsFirstDualStackPolicyRejection(reply, reply.IsPermanent, attemptNumber, dualStack));
                        outbox.Complete(batch[i], permanent ? RecipientStatus.Permanent : RecipientStatus.Temporary, host, dialled, reply, tls);
                        failed++;
                    }
                }
                if (throttleReply is not null)
                {
                    // A recipient refused as receiving too fast (RCPT or DATA): it and the rest wait out the pause.
                    var pause = shaping.NoteThrottled();
                    shaping.DeferThrottled(outbox, tooFast, [.. next, .. rest, .. work.TakeRest()], host, dialled, throttleReply, pause, tls);
                    await outbox.PublishAsync(cancellationToken);
                    throttled = true;
                    break;
                }
                if (result.RecipientReplies.Any(r => r.IsPositive))
                {
                    shaping.NoteClean();
                }
                await outbox.PublishAsync(cancellationToken);
                todo = [.. next, .. rest];
                firstTransaction = false;
            }
        }
        return new SessionResult(stillPending, sharedError, delivered, failed);
    }
}
