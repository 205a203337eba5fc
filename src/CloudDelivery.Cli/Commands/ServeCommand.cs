using System.CommandLine;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Loopback.Storage;
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
        var telemetry = new Option<string?>("--telemetry") { Description = "Where metrics, traces and logs go: auto (Azure Monitor or OTLP when their environment variables are set, else nowhere), azuremonitor, otlp, console, none. Default: CloudDelivery__Telemetry__Exporter, else auto." };
        telemetry.AcceptOnlyFromAmong("auto", "azuremonitor", "otlp", "console", "none");
        var service = new ServiceOptions();
        var command = new Command("serve", "Run the queue worker, the sweeper and the HTTP submission endpoint in this process.") { urls, telemetry };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            Dictionary<string, string?> overrides;
            try
            {
                overrides = service.Overrides(parse);
                if (parse.GetValue(telemetry) is { } exporter)
                {
                    overrides["CloudDelivery:Telemetry:Exporter"] = exporter;
                }
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

    /// <summary>The web host with the endpoints and the background worker; also used by tests and the demo.</summary>
    public static WebApplication Build(string urls, IDictionary<string, string?> overrides)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(overrides);
        builder.WebHost.UseUrls(urls);
        // The queue enforces its own message size limit (and answers 413); Kestrel's 30 MB default is lower.
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = null);
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
        var app = builder.Build();
        app.MapPost("/api/messages", async (HttpRequest request, SubmissionEndpoint endpoint, CancellationToken cancellationToken) =>
        {
            var response = await endpoint.HandleAsync(ToSubmission(request), cancellationToken);
            return Results.Content(response.Json, "application/json", statusCode: response.Status);
        });
        app.MapGet("/api/messages/{*id}", async (string id, OutboundQueue queue, CancellationToken cancellationToken) =>
        {
            var records = id.Contains('/', StringComparison.Ordinal)
                ? (await queue.FindAsync(id, cancellationToken) is { } one ? [one] : [])
                : await queue.FindMessageAsync(id, cancellationToken);
            return records.Count == 0
                ? Results.Json(new { error = "not-found", message = $"no message or recipient {id}" }, statusCode: 404)
                : Results.Content(StatusCommand.ToJson(records), "application/json");
        });
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

    private static HttpSubmission ToSubmission(HttpRequest request) => new(
        request.Query.SelectMany(q => q.Value.Select(v => (q.Key, Value: v ?? string.Empty))).ToLookup(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase),
        request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
        request.ContentType?.Split(';')[0].Trim(),
        request.Body);

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

/// <summary>Starts Azurite for the default development connection string when nothing listens on its ports.</summary>
internal static class LocalAzurite
{
    public static async Task<IDisposable?> StartIfNeededAsync(string connectionString, TextWriter output, CancellationToken cancellationToken)
    {
        if (!connectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase) || await AzuriteProcess.ListensAsync(10000))
        {
            return null;
        }
        if (AzuriteProcess.Find() is null)
        {
            throw new InvalidOperationException("storage is UseDevelopmentStorage=true but nothing listens on 127.0.0.1:10000 and Azurite is not installed: run `npm ci` in the repository, or pass --storage");
        }
        var location = Path.Combine(Path.GetTempPath(), "clouddelivery-azurite");
        Directory.CreateDirectory(location);
        var azurite = await AzuriteProcess.StartAsync(location, standardPorts: true, cancellationToken: cancellationToken);
        await output.WriteLineAsync($"started Azurite (data in {location})");
        return azurite;
    }
}
