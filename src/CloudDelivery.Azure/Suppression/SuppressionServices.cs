using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Suppression;

/// <summary>Registers the suppression list for both hosts and the CLI.</summary>
public static class SuppressionServices
{
    /// <summary>The list over Storage:SuppressionsTable, its counter, and the start-up check of CloudDelivery:Suppression.</summary>
    public static IServiceCollection AddSuppressionList(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<CloudDeliveryOptions>, SuppressionOptionsValidator>();
        services.AddSingleton(p => new SuppressionMetrics(p.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddSingleton(p => new SuppressionList(
            p.GetRequiredService<OutboundStorage>().Suppressions,
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Suppression,
            p.GetRequiredService<TimeProvider>(),
            p.GetService<ILogger<SuppressionList>>(),
            p.GetRequiredService<SuppressionMetrics>()));
        return services;
    }
}
