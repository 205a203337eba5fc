using CloudDelivery.Azure.Hosting;
using CloudDelivery.Delivery;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// Registers one <see cref="IEventSink"/> per configured destination (the Event Grid topic, each webhook),
/// which the event dispatcher resolves as <c>IEnumerable&lt;IEventSink&gt;</c>. Bad settings stop the host
/// at start-up, each named by its key.
/// </summary>
public static class EventSinkServices
{
    /// <summary><see cref="EventSinkOptions"/> bound from <see cref="EventSinkOptions.SectionPath"/> of <paramref name="configuration"/> (the root), and its sinks.</summary>
    public static IServiceCollection AddEventSinks(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(EventSinkOptions.SectionPath);
        services.AddOptions<EventSinkOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<EventSinkOptions>, EventSinkOptionsValidator>();
        // How many sinks there are is known from configuration now; each sink reads its validated settings.
        var configured = section.Get<EventSinkOptions>() ?? new EventSinkOptions();
        if (configured.EventGrid.IsEnabled)
        {
            services.AddSingleton<IEventSink>(p => new EventGridSink(
                Sinks(p).EventGrid,
                AzureCredentials.Create(p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.ManagedIdentityClientId),
                p.GetRequiredService<DeliveryEngine>().Resolver,
                p.GetRequiredService<DeliveryEngine>().Options.ExtraTrustRoots,
                p.GetService<TimeProvider>()));
        }
        for (var index = 0; index < configured.Webhooks.Count; index++)
        {
            var webhook = index;
            services.AddSingleton<IEventSink>(p =>
            {
                var engine = p.GetRequiredService<DeliveryEngine>();
                return new WebhookSink(Sinks(p).Webhooks[webhook], engine.Resolver, engine.Options.AddressPolicy, engine.Options.ExtraTrustRoots, p.GetService<TimeProvider>());
            });
        }
        return services;
    }

    private static EventSinkOptions Sinks(IServiceProvider services) => services.GetRequiredService<IOptions<EventSinkOptions>>().Value;

    private sealed class EventSinkOptionsValidator : IValidateOptions<EventSinkOptions>
    {
        public ValidateOptionsResult Validate(string? name, EventSinkOptions options) =>
            options.Problems().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}
