namespace CloudDelivery.Shaping;

/// <summary>
/// The traffic-shaping rules: per recipient domain or MX host suffix, how many connections at once, how many
/// messages per connection and per minute or hour. Shipped as data with defaults the operator can override.
/// </summary>
public sealed class TrafficShapingRules
{
    /// <summary>The shipped defaults.</summary>
    public static TrafficShapingRules Default { get; } = new();
}
