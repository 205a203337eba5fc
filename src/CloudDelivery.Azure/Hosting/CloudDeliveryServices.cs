using System.Diagnostics.Metrics;
using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.MtaSts;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Shaping;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.Suppression;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Azure.TlsRpt;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using CloudDelivery.MtaSts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Hosting;

/// <summary>Registers CloudDelivery's handlers the same way for the Functions host and <c>serve</c>.</summary>
public static class CloudDeliveryServices
{
    /// <summary>The name of CloudDelivery's health check in health reports.</summary>
    public const string ServiceHealthCheckName = "clouddelivery";

    public static IServiceCollection AddCloudDelivery(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<CloudDeliveryOptions>(configuration.GetSection(CloudDeliveryOptions.SectionName));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(p =>
        {
            var options = p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value;
            return new OutboundStorage(options.Storage, credential: options.Storage.UsesTokenCredential ? AzureCredentials.Create(options.ManagedIdentityClientId) : null);
        });
        // Bad DKIM or storage endpoint settings stop the host at start-up, naming the setting.
        services.AddDkimSigning(configuration.GetSection(DkimOptions.SectionPath));
        services.AddSingleton<IValidateOptions<CloudDeliveryOptions>, OutboundStorageOptionsValidator>();
        services.AddSingleton<IValidateOptions<CloudDeliveryOptions>, IdempotencyWindowValidator>();
        services.AddOptions<CloudDeliveryOptions>().ValidateOnStart();
        services.AddSingleton(p => new OutboundQueue(
            p.GetRequiredService<OutboundStorage>(),
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Queue,
            p.GetRequiredService<TimeProvider>(),
            p.GetRequiredService<IOptions<DkimOptions>>().Value.CreateSigner(p.GetRequiredService<TimeProvider>()))
        {
            Events = EventDispatchServices.OutboxOf(p),
            Suppressions = p.GetRequiredService<SuppressionList>(),
        });
        services.AddEventDispatch(configuration);
        services.AddSuppressionList();
        services.AddBounceClassification(configuration.GetSection(BounceOptions.SectionPath));
        services.AddOperatorTlsPolicies(configuration.GetSection(Tls.OperatorTlsPolicyOptions.SectionPath));
        services.AddTrafficShaping(configuration.GetSection(global::CloudDelivery.Shaping.TrafficShapingOptions.SectionPath));
        services.AddSharedShaping(configuration.GetSection(SharedShapingOptions.SectionPath));
        services.AddDeliveryEngine(configuration.GetSection(CloudDeliveryOptions.DeliverySection));
        services.AddSmarthost(configuration.GetSection(CloudDeliveryOptions.SmarthostSection));
        services.AddEventSinks(configuration);
        services.AddSingleton(p => new TlsRptResultStore(p.GetRequiredService<OutboundStorage>().TlsReports, p.GetRequiredService<TimeProvider>())
        {
            FlushInterval = p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.TlsRpt.ResultsFlushInterval,
        });
        // The shared table, with this process's reads of the last minute in front (one read per domain and minute, not per run).
        services.AddSingleton<IMtaStsPolicyStore>(p => new RecentlyReadMtaStsPolicyStore(new TableMtaStsPolicyStore(p.GetRequiredService<OutboundStorage>().MtaStsPolicies), p.GetRequiredService<TimeProvider>()));
        services.AddSingleton(p => new MtaStsPolicyRefresher(
            p.GetRequiredService<DeliveryEngine>().MtaSts,
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.MtaSts,
            p.GetRequiredService<TimeProvider>(),
            p.GetService<ILogger<MtaStsPolicyRefresher>>()));
        services.AddSingleton(p => new DomainDeliveryHandler(
            p.GetRequiredService<OutboundQueue>(),
            p.GetRequiredService<DeliveryEngine>(),
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Hostname,
            p.GetService<ILogger<DomainDeliveryHandler>>(),
            p.GetRequiredService<IOptions<SmarthostOptions>>().Value is { IsEnabled: true } smarthost ? smarthost : null,
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.TlsRpt.Enabled ? p.GetRequiredService<TlsRptResultStore>() : null,
            p.GetRequiredService<QueueMetrics>()));
        services.AddSingleton(p =>
        {
            var options = p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value;
            return TlsRptReportSender.Create(
                p.GetRequiredService<TlsRptResultStore>(),
                p.GetRequiredService<OutboundQueue>(),
                p.GetRequiredService<DeliveryEngine>(),
                options.TlsRpt.ToReporter(options.Hostname),
                options.TlsRpt,
                p.GetService<ILogger<TlsRptReportSender>>(),
                p.GetRequiredService<QueueMetrics>());
        });
        services.AddSingleton(p => new WakeUpWorker(
            p.GetRequiredService<OutboundQueue>(),
            p.GetRequiredService<DomainDeliveryHandler>(),
            p.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Worker,
            p.GetService<ILogger<WakeUpWorker>>(),
            p.GetRequiredService<ServiceHealth>()));
        services.AddSingleton(p => new ServiceHealth(p.GetRequiredService<TimeProvider>()));
        services.AddSingleton(p => new CloudDeliveryLoops(
            p.GetRequiredService<WakeUpWorker>(),
            p.GetRequiredService<QueuePurger>(),
            p.GetRequiredService<TlsRptReportSender>(),
            p.GetRequiredService<MtaStsPolicyRefresher>(),
            p.GetRequiredService<ServiceHealth>(),
            p.GetRequiredService<SuppressionList>(),
            p.GetRequiredService<TimeProvider>(),
            p.GetService<ILoggerFactory>())
        {
            Events = p.GetRequiredService<EventDispatcher>(),
            SharedShaping = (p.GetRequiredService<SharedThrottleState>(), p.GetRequiredService<IOptions<SharedShapingOptions>>().Value),
            ResolverCheck = p.GetRequiredService<ResolverSelfCheckLoop>(),
            TlsResults = p.GetRequiredService<TlsRptResultStore>(),
            HotDomains = (p.GetRequiredService<OutboundQueue>().HotDomains, p.GetRequiredService<OutboundQueue>().Options.HotSetRefresh),
        });
        // The check that the one configured resolver validates DNSSEC, on the engine's resolver and meter.
        services.AddSingleton(p => new ResolverSelfCheck(
            p.GetRequiredService<DeliveryEngine>().Resolver,
            p.GetRequiredService<IOptions<DeliveryOptions>>().Value.ResolverCheck,
            p.GetRequiredService<TimeProvider>(),
            p.GetRequiredService<DeliveryEngine>().Metrics));
        services.AddSingleton(p => new ResolverSelfCheckLoop(
            p.GetRequiredService<ResolverSelfCheck>(),
            p.GetRequiredService<ServiceHealth>(),
            p.GetRequiredService<TimeProvider>(),
            p.GetService<ILogger<ResolverSelfCheckLoop>>()));
        // Health: storage reachability, background loop liveness and the resolver's DNSSEC validation (serve's /healthz, the Functions Health function).
        services.AddHealthChecks().AddCheck<ServiceHealthCheck>(ServiceHealthCheckName);
        services.AddSingleton(p => new QueuePurger(p.GetRequiredService<OutboundQueue>(), p.GetService<ILogger<QueuePurger>>()));
        services.AddSingleton(p => new QueueMetrics(p.GetService<IMeterFactory>()));
        services.AddSingleton(p => new SubmissionEndpoint(p.GetRequiredService<OutboundQueue>()));
        return services;
    }

    /// <summary><see cref="DkimOptions"/> bound from <paramref name="dkim"/>, checked at start-up (a bad key stops the host, naming it).</summary>
    public static IServiceCollection AddDkimSigning(this IServiceCollection services, IConfigurationSection dkim)
    {
        services.AddOptions<DkimOptions>().Bind(dkim).ValidateOnStart();
        services.AddSingleton<IValidateOptions<DkimOptions>, DkimOptionsValidator>();
        return services;
    }
}
