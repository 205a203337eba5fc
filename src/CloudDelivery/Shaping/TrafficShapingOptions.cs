namespace CloudDelivery.Shaping;

/// <summary>
/// Traffic-shaping settings, bound from <see cref="SectionPath"/>: the shipped rules (per recipient domain or
/// MX host suffix: connections, messages per connection, per minute and per hour) and an optional operator
/// file of the same shape laid over them.
/// </summary>
public sealed class TrafficShapingOptions
{
    /// <summary>The section this is bound from; also the prefix of its error messages.</summary>
    public const string SectionPath = "CloudDelivery:Shaping";

    /// <summary>
    /// Path of a JSON rules file in the shape of the shipped one; its rules win over shipped rules with the
    /// same name or the same match, its "default" and "throttling" values over the shipped ones. Empty: the
    /// shipped rules alone.
    /// </summary>
    public string? RulesFile { get; set; }

    /// <summary>The rules these settings name.</summary>
    /// <exception cref="FormatException">The rules file cannot be read or is not a rules file.</exception>
    public TrafficShapingRules LoadRules() =>
        string.IsNullOrWhiteSpace(RulesFile) ? TrafficShapingRules.Default : TrafficShapingRules.LoadWithOverrides(RulesFile);

    /// <summary>What is wrong with these settings, one line per problem naming its key under <paramref name="path"/>.</summary>
    public IEnumerable<string> Problems(string path)
    {
        string? problem = null;
        try
        {
            LoadRules();
        }
        catch (FormatException e)
        {
            problem = $"{path}:{nameof(RulesFile)}: {e.Message}";
        }
        return problem is null ? [] : [problem];
    }
}
