using System.CommandLine;
using CloudDelivery.Azure.Domains;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Shaping;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.Suppression;
using CloudDelivery.Azure.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>clouddelivery serve</c>: the same handlers as the Functions app, hosted in one process: wake-up
/// queue polling (batch, visibility and poison semantics of the queue trigger), the sweeper timer, and
/// POST /api/messages on Kestrel. Runs against any storage connection; with the default (Azurite's) it
/// starts Azurite when nothing listens. Also the way to run CloudDelivery in a container.
/// </summary>
internal static class ServeCommand
{
    public static Command Create(TextWriter output)
    {
        var urls = new Option<string>("--urls") { Description = "Where the HTTP submission endpoint listens.", DefaultValueFactory = _ => "http://127.0.0.1:8025" };
        var telemetry = TelemetryOption();
        var service = new ServiceOptions();
        var command = new Command("serve", "Run the queue worker, the sweeper and the HTTP submission endpoint in this process.") { urls, telemetry };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            Dictionary<string, string?> overrides;
            try
            {
                overrides = service.Overrides(parse);
                WriteTelemetry(parse, telemetry, overrides);
                // A bad CloudDelivery__Telemetry__Exporter in the environment is a usage error too, not a crash in Build.
                TelemetryOptions.ResolveExporter(new ConfigurationBuilder().AddEnvironmentVariables().AddInMemoryCollection(overrides).Build());
            }
            catch (FormatException e)
            {
                await output.WriteLineAsync($"clouddelivery serve: {e.Message}");
                return CliApplication.ExitUsage;
            }
            await using var app = Build(parse.GetValue(urls)!, overrides);
            var storageOptions = app.Services.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Storage;
            // A real account by identity (Storage:AccountName) never needs the local emulator.
            using var azurite = storageOptions.UsesTokenCredential ? null : await LocalAzurite.StartIfNeededAsync(storageOptions.ConnectionString, output, cancellationToken);
            await app.Services.GetRequiredService<OutboundStorage>().EnsureCreatedAsync(cancellationToken);
            await output.WriteLineAsync($"clouddelivery serve: submissions at {parse.GetValue(urls)}/api/messages");
            await app.RunAsync(cancellationToken);
            // Stopped because a background loop died: exit non-zero so that the platform restarts us.
            return app.Services.GetServices<IHostedService>().OfType<LoopsService>().Any(l => l.LoopDied) ? ExitLoopDied : 0;
        });
        return command;
    }

    /// <summary>--telemetry, which writes CloudDelivery:Telemetry:Exporter.</summary>
    internal static Option<string?> TelemetryOption()
    {
        var telemetry = new Option<string?>("--telemetry") { Description = "Where metrics, traces and logs go: auto (Azure Monitor or OTLP when their environment variables are set, else nowhere), azuremonitor, otlp, console, none. Default: CloudDelivery__Telemetry__Exporter, else auto." };
        telemetry.AcceptOnlyFromAmong("auto", "azuremonitor", "otlp", "console", "none");
        return telemetry;
    }

    /// <summary>The key --telemetry writes, when it is given.</summary>
    internal static void WriteTelemetry(ParseResult parse, Option<string?> telemetry, IDictionary<string, string?> overrides)
    {
        if (parse.GetValue(telemetry) is { } exporter)
        {
            overrides[ConfigurationFlags.TelemetryExporter] = exporter;
        }
    }

    /// <summary>The web host with the endpoints and the background worker; also used by tests and the demo.</summary>
    /// <param name="urls">Kestrel's listen URLs.</param>
    /// <param name="overrides">Settings over the environment's.</param>
    /// <param name="configureServices">Runs after every registration, before the host is built (tests hand in a credential or transport here).</param>
    public static WebApplication Build(string urls, IDictionary<string, string?> overrides, Action<IServiceCollection>? configureServices = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(overrides);
        builder.WebHost.UseUrls(urls);
        var queueOptions = builder.Configuration.GetSection($"{CloudDeliveryOptions.SectionName}:Queue").Get<OutboundQueueOptions>() ?? new OutboundQueueOptions();
        builder.WebHost.ConfigureKestrel(kestrel => SetLimits(kestrel.Limits, queueOptions));
        // Kestrel's request lines carry the query string, and a submission's envelope (?to=<address>) is
        // in it: not at information level, where logs are kept and exported.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        builder.Services.AddCloudDelivery(builder.Configuration);
        // The queue gauges cost storage reads; sampled only when something exports them.
        var sampleQueue = builder.Services.AddCloudDeliveryTelemetry(builder.Configuration) != TelemetryExporter.None;
        builder.Services.AddHostedService(p => new LoopsService(
            p.GetRequiredService<CloudDeliveryLoops>(),
            sampleQueue ? p.GetRequiredService<QueueSampler>() : null,
            p.GetRequiredService<IHostApplicationLifetime>()));
        configureServices?.Invoke(builder.Services);
        var app = builder.Build();
        // The same handler as the Functions app's HTTP trigger.
        app.MapPost("/api/messages", (HttpRequest request, SubmissionEndpoint endpoint, CancellationToken cancellationToken) =>
            SubmissionHttpApi.SubmitAsync(request, endpoint, cancellationToken));
        app.MapGet("/api/messages/{*id}", async (string? id, OutboundQueue queue, CancellationToken cancellationToken) =>
        {
            try
            {
                // Ids are checked before storage sees them (OutboundQueue.IsRecipientId): an odd one is not found.
                var records = id is null ? [] : id.Contains('/', StringComparison.Ordinal)
                    ? (await queue.FindAsync(id, cancellationToken) is { } one ? [one] : [])
                    : await queue.FindMessageAsync(id, cancellationToken);
                return records.Count == 0
                    ? Results.Json(new { error = "not-found", message = "no such message or recipient" }, statusCode: 404)
                    : Results.Content(StatusCommand.ToJson(records), "application/json");
            }
            catch (Exception e) when (SubmissionEndpoint.IsStorageTrouble(e, cancellationToken))
            {
                return SubmissionHttpApi.ToResult(SubmissionEndpoint.StorageUnavailable());
            }
        });
        // The suppression list's API: the same handlers as the Functions app's triggers (SuppressionFunctions).
        app.MapGet("/api/suppressions", (HttpRequest request, SuppressionList list, CancellationToken ct) => SuppressionHttpApi.ListAsync(request, list, ct));
        app.MapPost("/api/suppressions", (HttpRequest request, SuppressionList list, CancellationToken ct) => SuppressionHttpApi.AddAsync(request, null, list, ct));
        app.MapGet("/api/suppressions/{address}", (HttpRequest request, string address, SuppressionList list, CancellationToken ct) => SuppressionHttpApi.LookupAsync(request, address, list, ct));
        app.MapPut("/api/suppressions/{address}", (HttpRequest request, string address, SuppressionList list, CancellationToken ct) => SuppressionHttpApi.AddAsync(request, address, list, ct));
        app.MapDelete("/api/suppressions/{address}", (HttpRequest request, string address, SuppressionList list, CancellationToken ct) => SuppressionHttpApi.RemoveAsync(request, address, list, ct));
        app.MapGet("/api/domains/{domain}", (string? domain, OutboundQueue queue, DestinationShaping shaping, CancellationToken cancellationToken) =>
            RecipientDomainTlsHttpApi.GetAsync(domain, queue, shaping, cancellationToken));
        // 200 while storage answers and every background loop runs (also when degraded: a loop failing its
        // rounds), 503 when storage does not answer or a loop died; the body says which and why.
        app.MapHealthChecks("/healthz", new HealthCheckOptions
        {
            ResponseWriter = (context, report) =>
            {
                context.Response.ContentType = "application/json";
                return context.Response.WriteAsync(ServiceHealthCheck.ToJson(report));
            },
        });
        return app;
    }

    /// <summary>
    /// Kestrel's limits, set explicitly rather than left to defaults, so what a client can make the endpoint
    /// hold is stated here: headers (size, count, time to arrive), a minimum body data rate (a client
    /// dripping its body is cut off), and a body no larger than the largest message plus slack.
    /// </summary>
    private static void SetLimits(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerLimits limits, OutboundQueueOptions queue)
    {
        // A raw body only grows when it is normalised (bare LF to CRLF), so more than the message cap is
        // always too large; a JSON body is limited by its own, lower cap (see SubmissionEndpoint).
        limits.MaxRequestBodySize = Math.Max(queue.MaxMessageBytes + (64 * 1024), SubmissionEndpoint.JsonBodyLimit(queue));
        limits.MaxRequestHeadersTotalSize = 32 * 1024;
        limits.MaxRequestHeaderCount = 100;
        // The request line carries the envelope of a raw submission (?from=&to=…): room for many recipients.
        limits.MaxRequestLineSize = 64 * 1024;
        limits.RequestHeadersTimeout = TimeSpan.FromSeconds(30);
        limits.KeepAliveTimeout = TimeSpan.FromMinutes(2);
        limits.MinRequestBodyDataRate = new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));
        limits.MinResponseDataRate = new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));
        limits.MaxConcurrentConnections = 1000;
    }

    /// <summary>
    /// Runs the background loops (wake-ups, sweeper, purge, TLSRPT reports, MTA-STS refresh, queue sampling)
    /// while the host runs. A loop that dies stops the host with exit code 70, so a supervisor restarts it.
    /// </summary>
    private sealed class LoopsService(CloudDeliveryLoops loops, QueueSampler? sampler, IHostApplicationLifetime lifetime) : BackgroundService
    {
        public bool LoopDied { get; private set; }

        protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
            loops.RunAsync(sampler, () =>
            {
                LoopDied = true;
                Environment.ExitCode = ExitLoopDied;
                lifetime.StopApplication();
            }, stoppingToken);
    }

    /// <summary>The exit code of a <c>serve</c> that stopped because a background loop died (EX_SOFTWARE).</summary>
    public const int ExitLoopDied = 70;
}
