using CloudDelivery.Dns;
using CloudDelivery.Shaping;

namespace CloudDelivery.Azure.Shaping;

/// <summary>
/// What traffic shaping does to one recipient domain, as an operator asks it from any process (the CLI's
/// <c>status --domain</c>, GET /api/domains/{domain}): the budget the domain spends (its own rule, else its
/// MX host's provider rule, else its own under the default), that budget's limits on this instance, and
/// whether it is paused — the shared throttle state every instance writes when a receiver throttles it.
/// </summary>
/// <param name="Key">The budget's name: the rule's, or the domain itself.</param>
/// <param name="Limits">The budget's limits on one instance (a shared rule's share, see Shaping__InstanceCount).</param>
/// <param name="PausedUntil">When the pause a receiver caused ends; null when the budget is not paused.</param>
/// <param name="MessagesPerMinute">The rate the last throttle lowered it to, while it recovers; null when unchanged.</param>
public sealed record DestinationShapingState(string Key, ShapingLimits Limits, DateTimeOffset? PausedUntil, int? MessagesPerMinute);

/// <summary>Reads <see cref="DestinationShapingState"/> through the one resolver and the shared throttle table.</summary>
public sealed class DestinationShaping(TrafficShapingRules rules, DnsResolver resolver, ThrottleStateTable throttles, TimeProvider time)
{
    /// <summary>The state of <paramref name="domain"/> (a partition key: ASCII, lower case, or an address literal).</summary>
    public async Task<DestinationShapingState> DescribeAsync(string domain, CancellationToken cancellationToken)
    {
        var rule = rules.MatchRecipientDomain(domain) ?? await ProviderRuleAsync(domain, cancellationToken);
        var key = rule?.Name ?? domain;
        var shared = await throttles.ReadAsync(key, cancellationToken);
        var paused = shared is { } state && state.PausedUntil > time.GetUtcNow();
        return new DestinationShapingState(key, rule?.Limits ?? rules.DefaultLimits, paused ? shared!.PausedUntil : null, shared?.MessagesPerMinute);
    }

    /// <summary>
    /// The provider rule of the domain's most preferred MX host, as delivery would pick it for that host. A
    /// lookup that fails leaves the domain on its own budget: this is a report, and it says which key it read.
    /// </summary>
    private async Task<ShapingRule?> ProviderRuleAsync(string domain, CancellationToken cancellationToken)
    {
        if (domain.StartsWith('[') || !rules.Rules.Any(r => r.MxSuffixes.Count > 0))
        {
            return null;
        }
        try
        {
            var mx = await resolver.LookupMxAsync(domain, cancellationToken);
            return mx.Records.OrderBy(r => r.Preference).Select(r => rules.MatchMxHost(r.Exchange)).FirstOrDefault(r => r is not null);
        }
        catch (DnsLookupException)
        {
            return null;
        }
    }

    /// <summary>One line for people: "budget google: 10 connections, 120/min; paused until … (rate 30/min)".</summary>
    public static string Describe(DestinationShapingState state)
    {
        var limits = new List<string>();
        var l = state.Limits;
        if (l.Connections is { } connections)
        {
            limits.Add($"{connections} connections");
        }
        if (l.MessagesPerConnection is { } perConnection)
        {
            limits.Add($"{perConnection} messages per connection");
        }
        if (l.MessagesPerMinute is { } perMinute)
        {
            limits.Add($"{perMinute}/min");
        }
        if (l.MessagesPerHour is { } perHour)
        {
            limits.Add($"{perHour}/hour");
        }
        var pause = state.PausedUntil is { } until ? $"; paused until {until:u} after a receiver asked us to slow down" : "; not paused";
        var rate = state.MessagesPerMinute is { } lowered ? $" (rate lowered to {lowered}/min)" : string.Empty;
        return $"budget {state.Key}: {(limits.Count == 0 ? "no limits" : string.Join(", ", limits))}{pause}{rate}";
    }
}
