using CloudDelivery.Shaping;
using CloudDelivery.Tls;

namespace CloudDelivery.Delivery;

/// <summary>
/// The operator's rule sets the engine applies, each loaded from its own configuration section (and its
/// shipped defaults): bounce classification, traffic shaping and TLS policies.
/// </summary>
public sealed record DeliveryRules(BounceClassifier Classifier, TrafficShapingRules Shaping, OperatorTlsPolicies TlsPolicies)
{
    /// <summary>The shipped defaults and no operator TLS policy.</summary>
    public static DeliveryRules Default { get; } = new(BounceClassifier.Default, TrafficShapingRules.Default, OperatorTlsPolicies.None);
}
