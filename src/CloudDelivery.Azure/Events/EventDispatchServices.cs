using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Events;

/// <summary>Registers the event pipeline (options, outbox, dispatcher) the same way for both hosts; the sinks register themselves.</summary>
public static class EventDispatchServices
{
    public static IServiceCollection AddEventDispatch(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<EventOptions>().Bind(configuration.GetSection(EventOptions.SectionPath)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<EventOptions>, EventOptionsValidator>();
        services.AddSingleton(p => new EventMetrics(p.GetRequiredService<QueueMetrics>()));
        services.AddSingleton(p => new EventDispatcher(
            p.GetRequiredService<OutboundStorage>(),
            p.GetServices<IEventSink>(),
            p.GetRequiredService<IOptions<EventOptions>>().Value,
            p.GetRequiredService<TimeProvider>(),
            p.GetRequiredService<EventMetrics>(),
            p.GetService<ILogger<EventDispatcher>>()));
        return services;
    }

    /// <summary>The outbox record writes use, or null when no sink is configured (then no event is written).</summary>
    public static EventOutbox? OutboxOf(IServiceProvider services)
    {
        var dispatcher = services.GetRequiredService<EventDispatcher>();
        if (!dispatcher.HasSinks)
        {
            return null;
        }
        var hostname = services.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Hostname;
        return new EventOutbox(new RecipientEvents(dispatcher.Options, hostname), services.GetRequiredService<TimeProvider>(), dispatcher);
    }
}

/// <summary>
/// The dispatcher in a host without <see cref="CloudDeliveryLoops"/> (the Functions worker): runs it
/// supervised while the host runs, health reporting it as the "events" loop; a timer function runs the sweep.
/// </summary>
public sealed class EventDispatcherService(EventDispatcher dispatcher, ServiceHealth health, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<EventDispatcherService>? logger = null) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        dispatcher.HasSinks
            ? BackgroundLoop.SuperviseAsync(health.Loop(EventDispatcher.LoopName), dispatcher.RunAsync, lifetime.StopApplication, time, (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, stoppingToken)
            : Task.CompletedTask;
}
