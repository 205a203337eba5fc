using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Functions;
using CloudDelivery.Tests.Queue;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>The Telemetry settings, the registration both hosts share, and the Functions timer.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class TelemetrySettingsTests(AzuriteFixture azurite)
{
    private static IConfiguration Configuration(Dictionary<string, string?> settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

    [Theory]
    [InlineData(null, null, null, TelemetryExporter.None)]
    [InlineData(null, "InstrumentationKey=00000000-0000-0000-0000-000000000000", null, TelemetryExporter.AzureMonitor)]
    [InlineData(null, null, "http://127.0.0.1:4318", TelemetryExporter.Otlp)]
    [InlineData("auto", "InstrumentationKey=00000000-0000-0000-0000-000000000000", "http://127.0.0.1:4318", TelemetryExporter.AzureMonitor)]
    [InlineData("Console", "InstrumentationKey=00000000-0000-0000-0000-000000000000", null, TelemetryExporter.Console)]
    [InlineData("none", null, "http://127.0.0.1:4318", TelemetryExporter.None)]
    public void Auto_follows_the_environment_and_an_explicit_exporter_wins(string? exporter, string? appInsights, string? otlp, TelemetryExporter expected)
    {
        var configuration = Configuration(new()
        {
            ["CloudDelivery:Telemetry:Exporter"] = exporter,
            ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = appInsights,
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp,
        });

        Assert.Equal(expected, new ServiceCollection().AddCloudDeliveryTelemetry(configuration));
    }

    [Fact]
    public void An_unknown_exporter_is_refused_naming_the_setting()
    {
        var configuration = Configuration(new() { ["CloudDelivery:Telemetry:Exporter"] = "prometheus" });

        var error = Assert.Throws<FormatException>(() => new ServiceCollection().AddCloudDeliveryTelemetry(configuration));
        Assert.Contains("CloudDelivery:Telemetry:Exporter", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_sample_is_logged_and_the_sampling_loop_carries_on()
    {
        // A table that was never created: every query fails with 404.
        var storage = new CloudDelivery.Azure.Storage.OutboundStorage(new CloudDelivery.Azure.Storage.OutboundStorageOptions
        {
            ConnectionString = azurite.ConnectionString,
            RecipientsTable = $"cdmissing{Guid.NewGuid():N}",
        });
        var logs = new LogCapture();
        using var factory = LoggerFactory.Create(logging => logging.AddProvider(logs));
        using var metrics = new QueueMetrics();
        var sampler = new QueueSampler(storage, metrics, new TelemetryOptions { QueueSampleInterval = TimeSpan.FromMilliseconds(50) }, TimeProvider.System, factory.CreateLogger<QueueSampler>());
        var status = new CloudDelivery.Azure.Hosting.ServiceHealth(TimeProvider.System).Loop("queue-sampler");
        using var stop = new CancellationTokenSource();

        var died = false;
        var running = CloudDelivery.Azure.Hosting.BackgroundLoop.SuperviseAsync(
            status,
            ct => CloudDelivery.Azure.Hosting.BackgroundLoop.RunPeriodicAsync(status, _ => sampler.Interval, sampler.SampleAsync, TimeProvider.System, factory.CreateLogger("loops"), ct),
            () => died = true,
            TimeProvider.System,
            factory.CreateLogger("loops"),
            stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (status.ConsecutiveFailures < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        await stop.CancelAsync();
        await running;

        Assert.True(status.ConsecutiveFailures >= 2);
        Assert.Equal(CloudDelivery.Azure.Hosting.BackgroundLoopState.Stopped, status.State);
        Assert.False(died);
        Assert.True(logs.Entries.Count(e => e.Message.StartsWith("Background loop queue-sampler failed", StringComparison.Ordinal)) >= 2);
        Assert.Null(metrics.Snapshot);
    }

    [Fact]
    public async Task Serve_refuses_an_unknown_exporter_as_a_usage_error()
    {
        using var output = new StringWriter();

        var fromSetting = await CloudDelivery.Cli.CliApplication.RunAsync(["serve", "--set", "CloudDelivery:Telemetry:Exporter=prometheus"], output, output);
        var fromOption = await CloudDelivery.Cli.CliApplication.RunAsync(["serve", "--telemetry", "prometheus"], output, output);

        Assert.Equal(CloudDelivery.Cli.CliApplication.ExitUsage, fromSetting);
        Assert.Contains("CloudDelivery:Telemetry:Exporter prometheus", output.ToString(), StringComparison.Ordinal);
        Assert.NotEqual(0, fromOption);
    }

    [Fact]
    public async Task The_functions_timer_samples_the_queue_through_the_registered_sampler()
    {
        var storage = await azurite.NewStorageAsync();
        var configuration = Configuration(new()
        {
            ["CloudDelivery:Storage:ConnectionString"] = azurite.ConnectionString,
            ["CloudDelivery:Storage:RecipientsTable"] = storage.Options.RecipientsTable,
            ["CloudDelivery:Storage:WakeUpQueue"] = storage.Options.WakeUpQueue,
            ["CloudDelivery:Storage:PoisonQueue"] = storage.Options.PoisonQueue,
            ["CloudDelivery:Storage:BodiesContainer"] = storage.Options.BodiesContainer,
            ["CloudDelivery:Telemetry:QueueSampleInterval"] = "00:05:00",
        });
        var services = new ServiceCollection().AddLogging().AddMetrics();
        services.AddCloudDelivery(configuration);
        services.AddCloudDeliveryTelemetry(configuration);
        await using var provider = services.BuildServiceProvider();
        await storage.WakeUps.SendMessageAsync(new CloudDelivery.Azure.WakeUps.WakeUp("timer.example").ToJson());
        var functions = new TelemetryFunctions(provider.GetRequiredService<QueueSampler>());

        await functions.SampleQueue(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);

        var metrics = provider.GetRequiredService<QueueMetrics>();
        var snapshot = Assert.IsType<QueueSnapshot>(metrics.Snapshot);
        Assert.Equal(1, snapshot.WakeUpMessages);
        Assert.Equal(TimeSpan.FromMinutes(15), metrics.SnapshotLifetime);
        // Each firing takes a fresh sample: the timer is the schedule (every five minutes, with the sweeps).
        await storage.WakeUps.SendMessageAsync(new CloudDelivery.Azure.WakeUps.WakeUp("timer.example").ToJson());
        await functions.SampleQueue(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);
        Assert.NotSame(snapshot, metrics.Snapshot);
        Assert.Equal(2, metrics.Snapshot!.WakeUpMessages);
        Assert.Equal("0 */5 * * * *", QueueSampler.Schedule);
    }
}
