using CloudDelivery.Shaping;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Hosting;

/// <summary>Registers the traffic-shaping rules the delivery engine applies, from their own section.</summary>
public static class TrafficShapingServices
{
    /// <summary>
    /// <see cref="TrafficShapingOptions"/> bound from <paramref name="shaping"/> and checked at start-up (an
    /// unreadable or invalid rules file stops the host with one line naming the key, where in the file and
    /// why), and the <see cref="TrafficShapingRules"/> singleton the engine picks up.
    /// </summary>
    public static IServiceCollection AddTrafficShaping(this IServiceCollection services, IConfigurationSection shaping)
    {
        services.AddOptions<TrafficShapingOptions>().Bind(shaping).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TrafficShapingOptions>>(new RulesFileValidator(shaping.Path));
        // Each instance takes its share of the budgets many domains share (CloudDelivery:Shaping:InstanceCount).
        services.AddSingleton(p => p.GetRequiredService<IOptions<TrafficShapingOptions>>().Value.LoadRules()
            .SharedBy(p.GetService<IOptions<Shaping.SharedShapingOptions>>()?.Value.InstanceCount ?? 1));
        return services;
    }

    private sealed class RulesFileValidator(string path) : IValidateOptions<TrafficShapingOptions>
    {
        public ValidateOptionsResult Validate(string? name, TrafficShapingOptions options) =>
            options.Problems(path).ToList() is { Count: > 0 } found ? ValidateOptionsResult.Fail(found) : ValidateOptionsResult.Success;
    }
}
