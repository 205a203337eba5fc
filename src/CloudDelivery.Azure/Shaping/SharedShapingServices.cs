using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Delivery;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Shaping;

/// <summary>Registers the sharing of shaping budgets between instances for both hosts.</summary>
public static class SharedShapingServices
{
    /// <summary>
    /// <see cref="SharedShapingOptions"/> bound from <paramref name="section"/> and checked at start-up, the
    /// throttle state table, and the round that shares it (over the engine's shaper).
    /// </summary>
    public static IServiceCollection AddSharedShaping(this IServiceCollection services, IConfigurationSection section)
    {
        services.AddOptions<SharedShapingOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SharedShapingOptions>, SharedShapingOptionsValidator>();
        services.AddSingleton(p => new ThrottleStateTable(p.GetRequiredService<OutboundStorage>().Shaping));
        services.AddSingleton<IThrottleStateExchange>(p => new EngineThrottleExchange(p.GetRequiredService<DeliveryEngine>().Shaper, p.GetRequiredService<TimeProvider>()));
        services.AddSingleton(p => new DestinationShaping(
            p.GetRequiredService<DeliveryEngine>().Options.Shaping,
            p.GetRequiredService<DeliveryEngine>().Resolver,
            p.GetRequiredService<ThrottleStateTable>(),
            p.GetRequiredService<TimeProvider>()));
        services.AddSingleton(p => new SharedThrottleState(
            p.GetRequiredService<ThrottleStateTable>(),
            p.GetRequiredService<IThrottleStateExchange>(),
            p.GetRequiredService<TimeProvider>(),
            SharedThrottleState.NewInstanceName(),
            p.GetService<ILogger<SharedThrottleState>>()));
        return services;
    }

    /// <summary>The sharing loop: a round per <see cref="SharedShapingOptions.SharedStateInterval"/>, supervised; used by both hosts.</summary>
    public static Task RunLoopAsync(SharedThrottleState shared, SharedShapingOptions options, ServiceHealth health, Action onDeath, TimeProvider time, ILogger log, CancellationToken cancellationToken) =>
        BackgroundLoop.SupervisePeriodicAsync(health, SharedThrottleState.LoopName, _ => options.SharedStateInterval, shared.RunRoundAsync, onDeath, time, log, cancellationToken);
}

/// <summary>The sharing loop in the Functions worker (which has no <see cref="CloudDeliveryLoops"/>): supervised while the host runs.</summary>
public sealed class SharedShapingService(SharedThrottleState shared, IOptions<SharedShapingOptions> options, ServiceHealth health, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<SharedShapingService>? logger = null) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        SharedShapingServices.RunLoopAsync(shared, options.Value, health, lifetime.StopApplication, time, (ILogger?)logger ?? NullLogger.Instance, stoppingToken);
}
