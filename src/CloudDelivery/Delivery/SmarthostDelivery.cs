using System.Net;
using CloudDelivery.Dialing;
using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>The smarthost path: every message goes to one relay chosen by the operator, not to the MX hosts.</summary>
public sealed partial class DeliveryEngine
{
    /// <summary>
    /// Delivers <paramref name="request"/>'s messages through a smarthost instead of the recipients' MX
    /// hosts: STARTTLS with a WebPKI-verified certificate is required, then the login, then the same
    /// transactions and per-recipient results as direct delivery. Relay failures are temporary unless the
    /// relay answers 5xx for a recipient or a message.
    /// </summary>
    public async Task<DeliveryOutcome> DeliverViaSmarthostAsync(DeliveryRequest request, SmarthostOptions smarthost, CancellationToken cancellationToken)
    {
        var state = new AttemptState(request);
        if (state.RefuseUnencodable())
        {
            await state.PublishAsync(cancellationToken);
            return state.ToOutcome();
        }
        IReadOnlyList<IPAddress> addresses;
        if (IPAddress.TryParse(smarthost.Host, out var literal))
        {
            addresses = [literal];
        }
        else
        {
            var lookup = await resolver.LookupAddressesAsync(smarthost.Host, cancellationToken);
            addresses = lookup.Records;
            if (!lookup.Found)
            {
                state.Fail(state.Pending, smarthost.Host, null, DeliveryFailure.Of(DeliveryFailureKind.SmarthostDnsFailed, $"smarthost {smarthost.Host}: {lookup.Error ?? "no addresses"}"));
                await state.PublishAsync(cancellationToken);
                return state.ToOutcome();
            }
        }

        // The relay is the operator's choice, so the address policy for strangers' DNS does not apply.
        var dial = await new Dialer(AddressPolicy.Unrestricted, options.ConnectTimeout).DialAsync(addresses, smarthost.Port, cancellationToken);
        var (socket, dialled) = (dial.Socket, dial.Address);
        if (socket is null)
        {
            var failure = dial.LastFailure is { } last
                ? DeliveryFailure.Of(
                    last.Outcome == DialOutcome.TimedOut ? DeliveryFailureKind.SmarthostConnectTimeout : DeliveryFailureKind.SmarthostDialFailed,
                    $"connecting to smarthost {last.Address}:{smarthost.Port}: {last.Cause?.Message ?? last.Reason}")
                : DeliveryFailure.Of(DeliveryFailureKind.SmarthostDialFailed, $"smarthost {smarthost.Host} has no addresses");
            state.Fail(state.Pending, smarthost.Host, null, failure);
            await state.PublishAsync(cancellationToken);
            return state.ToOutcome();
        }

        // The relay's TLS outcome goes to no report: the recipient domains never chose it.
        var tls = TlsPolicyDecision.ForSmarthost(smarthost.Host, options.ExtraTrustRoots);
        var scratch = tls.HostReport!.ToResult();
        try
        {
            var sessionOptions = new SmtpSessionOptions { EhloHostname = options.EhloHostname, CommandTimeout = options.CommandTimeout, SessionTimeout = options.SessionTimeout, Time = time };
            await using var session = await SmtpSession.ConnectAsync(socket, tls.TlsName, tls.Mode, tls.Plan, sessionOptions, scratch, scratch, cancellationToken);
            state.AddConnection(Opened(smarthost.Host, dialled!, session, plaintextRetry: false)); // TLS is required: always a version
            if (smarthost.UserName is not null)
            {
                await session.AuthenticateAsync(smarthost.UserName, smarthost.Password ?? string.Empty, cancellationToken);
            }
            // The relay's certificate is verified, but nothing is known about the recipient domain's policy.
            var posture = session.IsTls ? TlsPosture.Opportunistic : TlsPosture.Plaintext;
            var work = new SessionWork(state.Pending);
            var (stillPending, sharedError, _, _) = await Transactions.RunAsync(state.OpenOutbox(), session, posture, work, smarthost.Host, dialled!, dualStack: false, state.Request.Attempt, cancellationToken);
            stillPending.AddRange(work.TakeRest());
            var error = sharedError ?? DeliveryFailure.Of(DeliveryFailureKind.SmarthostConnectionLost, $"connection to smarthost {smarthost.Host} lost") with { Tls = posture };
            state.Fail(stillPending, smarthost.Host, dialled, error);
        }
        catch (SmtpSessionException e)
        {
            // Refused TLS, a bad certificate or a failed login: the relay's configuration, not the mail, is at fault.
            state.AddConnection(new ConnectionReport(smarthost.Host, dialled!, null, CertificateVerification.None, null, false, e.Message));
            state.Fail(state.Pending.Where(p => !state.IsComplete(p)), smarthost.Host, dialled, DeliveryFailure.FromSession(e) with { Permanent = false });
        }
        await state.PublishAsync(cancellationToken);
        return state.ToOutcome();
    }
}
