using CloudDelivery.Delivery;
using CloudDelivery.MtaSts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// Registers direct delivery and the smarthost from their configuration sections, checked at start-up: a
/// bad value stops the host with one line naming its key. Shared by both hosts and the CLI's commands.
/// </summary>
public static class DeliveryServices
{
    /// <summary>
    /// <see cref="DeliveryOptions"/> bound from <paramref name="delivery"/> and the <see cref="DeliveryEngine"/>
    /// built from it, with <see cref="CloudDeliveryOptions.Hostname"/> for EHLO and the registered
    /// <see cref="IMtaStsPolicyStore"/> if any (else a cache in memory).
    /// </summary>
    public static IServiceCollection AddDeliveryEngine(this IServiceCollection services, IConfigurationSection delivery)
    {
        services.AddOptions<DeliveryOptions>().Bind(delivery).ValidateOnStart();
        services.AddSingleton<IValidateOptions<DeliveryOptions>>(new ProblemsValidator<DeliveryOptions>(o => o.Problems(delivery.Path)));
        services.AddOptions<CloudDeliveryOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CloudDeliveryOptions>, HostnameValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(p => DeliveryEngine.Create(
            p.GetRequiredService<IOptions<DeliveryOptions>>().Value,
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Hostname,
            policyStore: p.GetService<IMtaStsPolicyStore>(),
            time: p.GetRequiredService<TimeProvider>(),
            loggerFactory: p.GetService<ILoggerFactory>(),
            rules: RulesOf(p)));
        return services;
    }

    /// <summary>
    /// The operator's rule sets, each registered as a singleton by its own AddX from its own section (the
    /// shipped defaults where none is registered).
    /// </summary>
    private static DeliveryRules RulesOf(IServiceProvider services) => new(
        services.GetService<BounceClassifier>() ?? BounceClassifier.Default,
        services.GetService<global::CloudDelivery.Shaping.TrafficShapingRules>() ?? global::CloudDelivery.Shaping.TrafficShapingRules.Default,
        services.GetService<Tls.OperatorTlsPolicies>() ?? Tls.OperatorTlsPolicies.None);

    /// <summary><see cref="SmarthostOptions"/> bound from <paramref name="smarthost"/>; an empty Host means direct delivery.</summary>
    public static IServiceCollection AddSmarthost(this IServiceCollection services, IConfigurationSection smarthost)
    {
        services.AddOptions<SmarthostOptions>().Bind(smarthost).PostConfigure(options =>
        {
            // An app setting left empty ("UserName=") means no login, as an absent one does.
            if (string.IsNullOrEmpty(options.UserName))
            {
                options.UserName = null;
            }
        }).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SmarthostOptions>>(new ProblemsValidator<SmarthostOptions>(o => o.Problems(smarthost.Path)));
        return services;
    }

    /// <summary>An options type's own check, each problem one line naming its key.</summary>
    private sealed class ProblemsValidator<T>(Func<T, IEnumerable<string>> problems) : IValidateOptions<T>
        where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options) =>
            problems(options).ToList() is { Count: > 0 } found ? ValidateOptionsResult.Fail(found) : ValidateOptionsResult.Success;
    }

    /// <summary>Our name goes into EHLO (RFC 5321 §4.1.1.1), DSNs and TLSRPT reports: it cannot be empty.</summary>
    private sealed class HostnameValidator : IValidateOptions<CloudDeliveryOptions>
    {
        public ValidateOptionsResult Validate(string? name, CloudDeliveryOptions options) =>
            string.IsNullOrWhiteSpace(options.Hostname)
                ? ValidateOptionsResult.Fail($"{CloudDeliveryOptions.SectionName}:{nameof(CloudDeliveryOptions.Hostname)}: expected our host name, e.g. mta.example.com")
                : ValidateOptionsResult.Success;
    }
}
