using System.Net;
using CloudDelivery.Addressing;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Delivery;

/// <summary>One recipient of one message, the unit every result is recorded for.</summary>
internal sealed record PendingRecipient(OutboundMessage Message, EmailAddress Recipient);

/// <summary>The locked result bookkeeping of one delivery attempt, shared by its sessions.</summary>
internal sealed class AttemptState(DeliveryRequest request)
{
    // Parallel sessions to one host complete recipients concurrently: the result map and the
    // connection list are shared, each session's outbox is its own.
    private readonly Lock gate = new();
    private readonly Dictionary<PendingRecipient, RecipientResult> results = [];
    private Outbox? main;

    public DeliveryRequest Request { get; } = request;

    private readonly List<PendingRecipient> everyone = request.Messages.SelectMany(m => m.Recipients.Distinct().Select(r => new PendingRecipient(m, r))).ToList();

    /// <summary>The recipients still to deliver: all but those <see cref="RefuseUnencodable"/> failed.</summary>
    public List<PendingRecipient> Pending { get; } = [];

    /// <summary>
    /// Fails, permanently and alone, each recipient whose address (or whose message's sender) MAIL FROM /
    /// RCPT TO cannot carry, so it never reaches a session where it would fail the transaction, the
    /// session or the run around it. Returns true when no recipient is left to deliver.
    /// </summary>
    public bool RefuseUnencodable()
    {
        foreach (var recipient in everyone)
        {
            if (recipient.Message.Sender is { } sender && !sender.IsEncodable(out var senderReason))
            {
                Main.Fail([recipient], null, null, DeliveryFailure.Of(DeliveryFailureKind.UnencodableSender, $"sender address {sender} cannot be sent: {senderReason}"));
            }
            else if (!recipient.Recipient.IsEncodable(out var reason))
            {
                Main.Fail([recipient], null, null, DeliveryFailure.Of(DeliveryFailureKind.UnencodableRecipient, $"recipient address {recipient.Recipient} cannot be sent: {reason}"));
            }
            else
            {
                Pending.Add(recipient);
            }
        }
        return Pending.Count == 0;
    }

    public TlsRptResult? RecipientDomainResult { get; set; }

    public List<TlsRptResult> HostResults { get; } = [];

    private List<ConnectionReport> Connections { get; } = [];

    /// <summary>What the recipient domain's MX supports, from the session that delivered, else the last one past EHLO.</summary>
    private RecipientDomainTls? DomainTls { get; set; }

    private bool domainTlsFromDelivery;

    /// <summary>Notes what a session saw; one that delivered outranks one that did not (as mox keeps its hint from successful deliveries).</summary>
    public void NoteDomainTls(RecipientDomainTls seen, bool delivered)
    {
        lock (gate)
        {
            if (delivered || !domainTlsFromDelivery)
            {
                DomainTls = seen;
                domainTlsFromDelivery |= delivered;
            }
        }
    }

    /// <summary>The outbox of the attempt's sequential parts (DNS and policy failures, what no session concluded).</summary>
    private Outbox Main => main ??= new Outbox(this);

    /// <summary>The sequential parts' outbox, for what traffic shaping holds back outside a session.</summary>
    public Outbox MainOutbox => Main;

    /// <summary>The traffic-shaping budget of the host being tried (hosts are tried one at a time), for its sessions.</summary>
    public HostShaping Shaping { get; set; } = HostShaping.Unshaped;

    /// <summary>An outbox for one more session: its results are published by it, and only by it.</summary>
    public Outbox OpenOutbox() => new(this);

    public void AddConnection(ConnectionReport report)
    {
        lock (gate)
        {
            Connections.Add(report);
        }
    }

    public void Fail(IEnumerable<PendingRecipient> recipients, string? host, IPAddress? address, DeliveryFailure failure) =>
        Main.Fail(recipients, host, address, failure);

    public Task PublishAsync(CancellationToken cancellationToken) => Main.PublishAsync(cancellationToken);

    public bool IsComplete(PendingRecipient recipient)
    {
        lock (gate)
        {
            return results.ContainsKey(recipient);
        }
    }

    private void Record(PendingRecipient recipient, RecipientResult result)
    {
        lock (gate)
        {
            results[recipient] = result;
        }
    }

    /// <summary>
    /// Results one session has decided and not yet handed to the request's callback. A session publishes
    /// only its own, and waits for that, before its next transaction: what the callback records durably
    /// is then always what that session's server has already answered.
    /// </summary>
    public sealed class Outbox(AttemptState state)
    {
        private readonly List<RecipientResult> unpublished = [];

        public void Complete(PendingRecipient recipient, RecipientStatus status, string? host, IPAddress? address, SmtpReply reply, TlsPosture tls = TlsPosture.None, LocalFailure local = LocalFailure.None)
        {
            var result = new RecipientResult(recipient.Message.Id, recipient.Recipient, status, host, address, reply, tls, local);
            state.Record(recipient, result);
            unpublished.Add(result);
        }

        /// <summary>Records <paramref name="recipient"/> as held back for <paramref name="retryAfter"/>: Deferred, no attempt spent.</summary>
        public void Defer(PendingRecipient recipient, string? host, IPAddress? address, SmtpReply reply, TimeSpan retryAfter, TlsPosture tls)
        {
            var result = new RecipientResult(recipient.Message.Id, recipient.Recipient, RecipientStatus.Deferred, host, address, reply, tls) { RetryAfter = retryAfter };
            state.Record(recipient, result);
            unpublished.Add(result);
        }

        /// <summary>Records <paramref name="failure"/> (its status, reply, TLS posture and local reason) for each recipient.</summary>
        public void Fail(IEnumerable<PendingRecipient> recipients, string? host, IPAddress? address, DeliveryFailure failure)
        {
            foreach (var recipient in recipients)
            {
                Complete(recipient, failure.Status, host, address, failure.Reply, failure.Tls, failure.Local);
            }
        }

        /// <summary>Hands results decided since the last call to the request's callback.</summary>
        public async Task PublishAsync(CancellationToken cancellationToken)
        {
            if (unpublished.Count == 0 || state.Request.ResultsReady is null)
            {
                unpublished.Clear();
                return;
            }
            var batch = unpublished.ToArray();
            unpublished.Clear();
            await state.Request.ResultsReady(batch, cancellationToken);
        }
    }

    private static RecipientResult NotAttempted(PendingRecipient p)
    {
        var failure = DeliveryFailure.Of(DeliveryFailureKind.NotAttempted, "not attempted");
        return new RecipientResult(p.Message.Id, p.Recipient, failure.Status, null, null, failure.Reply, failure.Tls, failure.Local);
    }

    public DeliveryOutcome ToOutcome() => new()
    {
        Recipients = everyone.Select(p => results.TryGetValue(p, out var r) ? r : NotAttempted(p)).ToArray(),
        RecipientDomainResult = RecipientDomainResult,
        HostResults = HostResults,
        Connections = Connections,
        DomainTls = DomainTls,
    };
}
