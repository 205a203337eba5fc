using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>
/// Classifies failing replies into <see cref="BounceCategory"/>. The order of the decision:
/// <list type="number">
/// <item>a failure the engine decided itself (DNS, connection, timeout, TLS, policy) keeps its category — receiver texts never apply to it;</item>
/// <item>the first of <see cref="Rules"/> that matches the server's reply (the operator's rules, then the shipped ones);</item>
/// <item>the enhanced status code (RFC 3463), else the basic code (<see cref="BounceClassification.OfCodes"/>).</item>
/// </list>
/// The engine (throttling is a reply classified <see cref="BounceCategory.Throttled"/>), the queue, events,
/// suppression and telemetry all ask the configured one.
/// </summary>
public sealed class BounceClassifier
{
    /// <param name="rules">The receiver-text rules, checked in order; the first that matches decides.</param>
    public BounceClassifier(IReadOnlyList<BounceRule> rules)
    {
        Rules = [.. rules];
    }

    /// <summary>The shipped rules (<see cref="BounceRules.Shipped"/>).</summary>
    public static BounceClassifier Default => DefaultClassifier.Value;

    private static readonly Lazy<BounceClassifier> DefaultClassifier = new(() => new BounceClassifier(BounceRules.Shipped));

    /// <summary>A classifier checking <paramref name="operatorRules"/> before the shipped rules.</summary>
    public static BounceClassifier WithOperatorRules(IReadOnlyList<BounceRule> operatorRules) =>
        operatorRules.Count == 0 ? Default : new BounceClassifier([.. operatorRules, .. BounceRules.Shipped]);

    /// <summary>The rules checked before the codes, in order.</summary>
    public IReadOnlyList<BounceRule> Rules { get; }

    /// <summary>The category of a failing <paramref name="reply"/>, decided locally or by a server.</summary>
    public BounceCategory Classify(SmtpReply reply, LocalFailure localFailure = LocalFailure.None)
    {
        if (BounceClassification.OfLocalFailure(reply, localFailure) is { } local)
        {
            return local;
        }
        if (reply.IsPositive)
        {
            return BounceCategory.None;
        }
        // Only a server's reply is matched against receiver texts: a permanent DNS answer is the engine's own.
        if (localFailure == LocalFailure.None)
        {
            foreach (var rule in Rules)
            {
                if (rule.Matches(reply))
                {
                    return rule.Category;
                }
            }
        }
        return BounceClassification.OfCodes(reply);
    }

    /// <summary>The category of <paramref name="result"/>: <see cref="BounceCategory.None"/> when it was delivered.</summary>
    public BounceCategory Classify(RecipientResult result) =>
        result.Status == RecipientStatus.Delivered ? BounceCategory.None : Classify(result.Reply, result.LocalFailure);

    /// <summary>
    /// True when a permanent failure says the address or its domain does not exist: only then is the
    /// address suppressed. Policy, TLS, content and rate failures never suppress — the same address may
    /// well take the next message.
    /// </summary>
    public bool SuppressesAddress(RecipientResult result) =>
        result.Status == RecipientStatus.Permanent && BounceClassification.Suppresses(Classify(result));
}
