using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Shaping;

/// <summary>
/// How instances share traffic-shaping budgets, bound from "CloudDelivery:Shaping" (environment variables
/// like CloudDelivery__Shaping__InstanceCount). The rules themselves (budgets per destination) are the
/// engine's; these settings only say how many instances split them and how often throttle state is shared.
/// </summary>
public sealed class SharedShapingOptions
{
    public const string SectionPath = "CloudDelivery:Shaping";

    /// <summary>
    /// Instances that may deliver at once (the Function app's maximum scale-out; 1 for one <c>serve</c>).
    /// Each instance takes this share of every per-minute and per-hour budget and of the connections at
    /// once, so that together they stay within the budget a receiver allows our one IP.
    /// </summary>
    public int InstanceCount { get; set; } = 1;

    /// <summary>How often an instance reads the throttle state other instances saw, and writes what it saw.</summary>
    public TimeSpan SharedStateInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Rows older than this are not read: a throttle is long over by then (its pause is capped well below it).</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromHours(2);
}

/// <summary>Stops the host at start-up on a shaping setting it cannot use, naming it.</summary>
internal sealed class SharedShapingOptionsValidator : IValidateOptions<SharedShapingOptions>
{
    public ValidateOptionsResult Validate(string? name, SharedShapingOptions options)
    {
        var errors = new List<string>();
        if (options.InstanceCount is < 1 or > 1000)
        {
            errors.Add($"{SharedShapingOptions.SectionPath}:InstanceCount {options.InstanceCount} is not between 1 and 1000");
        }
        if (options.SharedStateInterval < TimeSpan.FromSeconds(1) || options.SharedStateInterval > TimeSpan.FromMinutes(10))
        {
            errors.Add($"{SharedShapingOptions.SectionPath}:SharedStateInterval {options.SharedStateInterval} is not between 1 second and 10 minutes");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
