using System.Net;
using System.Text.Json;
using Azure.Storage.Queues;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Loopback.Storage;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.Tests.Queue;
using CloudDelivery.Tests.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.Hosting;

/// <summary>Background loops keep going whatever they meet, and health tells the truth about them and storage.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class SupervisionTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_wake_up_that_is_not_base64_is_poisoned_and_polling_goes_on_delivering()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("after.example", 10, "mx.after.example");
        var mx = await world.Network.AddMxServerAsync("mx.after.example");
        // A tool that does not encode puts plain text on the wake-up queue.
        var plain = new QueueClient(azurite.ConnectionString, world.Storage.Options.WakeUpQueue, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None });
        await plain.SendMessageAsync("wake up after.example, please");
        var logs = new LogCapture();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(logs));
        var health = new ServiceHealth(TimeProvider.System);
        var worker = new WakeUpWorker(world.Queue, world.Handler, new WakeUpWorkerOptions(), loggers.CreateLogger<WakeUpWorker>(), health);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var polling = worker.RunAsync(stop.Token);
        await WaitUntilAsync(async () => (await world.Storage.Poison.PeekMessagesAsync(1)).Value.Length > 0, stop.Token);

        await world.SubmitAsync("s@sender.example", ["r@after.example"]);
        await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));

        Assert.False(polling.IsCompleted, "the polling loop still runs");
        Assert.Equal("wake up after.example, please", Assert.Single((await world.Storage.Poison.PeekMessagesAsync(10)).Value).Body.ToString());
        Assert.Contains(logs.Entries, e => e.Message.Contains("not base64", StringComparison.Ordinal));
        Assert.Equal(0, health.Loop(WakeUpWorker.PollingLoopName).ConsecutiveFailures);
        await stop.CancelAsync();
        await polling;
    }

    [Fact]
    public async Task Polling_that_cannot_reach_storage_goes_on_and_health_says_unhealthy()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var storage = UnreachableStorage();
        var health = new ServiceHealth(TimeProvider.System);
        var unreachable = new OutboundQueue(storage, new OutboundQueueOptions(), TimeProvider.System);
        var worker = new WakeUpWorker(unreachable, new DomainDeliveryHandler(unreachable, world.Engine, "mta.loopback.test"), new WakeUpWorkerOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(200) }, health: health);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var polling = worker.RunAsync(stop.Token);
        await WaitUntilAsync(() => Task.FromResult(health.Loop(WakeUpWorker.PollingLoopName).ConsecutiveFailures >= 1), stop.Token);

        Assert.False(polling.IsCompleted, "a poll that cannot reach storage does not end the loop");
        Assert.NotNull(health.Loop(WakeUpWorker.PollingLoopName).LastError);
        var check = await new ServiceHealthCheck(health, storage).CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Unhealthy, check.Status);
        Assert.Contains("storage is not answering", check.Description, StringComparison.Ordinal);
        await stop.CancelAsync();
        await polling;
    }

    [Fact]
    public async Task A_loop_that_ends_while_the_host_runs_is_dead_health_fails_and_the_host_is_told()
    {
        var storage = await azurite.NewStorageAsync();
        var health = new ServiceHealth(TimeProvider.System);
        var logs = new LogCapture();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(logs));
        var died = 0;
        using var running = new CancellationTokenSource();

        // A defect: the loop returns although nobody asked it to stop.
        await BackgroundLoop.SuperviseAsync(health.Loop("purge"), _ => Task.CompletedTask, () => died++, TimeProvider.System, loggers.CreateLogger("loops"), running.Token);
        var report = await new ServiceHealthCheck(health, storage).CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(1, died);
        Assert.Equal(BackgroundLoopState.Dead, health.Loop("purge").State);
        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.Contains("purge", report.Description, StringComparison.Ordinal);
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Critical);
    }

    [Fact]
    public async Task A_round_that_throws_is_counted_and_the_loop_goes_round_again()
    {
        var health = new ServiceHealth(TimeProvider.System);
        var status = health.Loop("sweeper");
        var rounds = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var loop = BackgroundLoop.RunPeriodicAsync(status, _ => TimeSpan.FromMilliseconds(10), _ =>
        {
            // Two rounds hit a defect, the third works; then the test stops the loop.
            if (++rounds <= 2)
            {
                throw new InvalidOperationException($"round {rounds} broke");
            }
            stop.Cancel();
            return Task.CompletedTask;
        }, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, stop.Token);
        await loop;

        Assert.Equal(3, rounds);
        Assert.Equal(0, status.ConsecutiveFailures);
        Assert.Equal("InvalidOperationException: round 2 broke", status.LastError);
        Assert.NotNull(status.LastSuccess);
    }

    [Fact]
    public async Task Serve_healthz_says_503_once_storage_is_gone()
    {
        var storageEmulator = await AzuriteProcess.StartAsync();
        await using var world = await LoopbackWorld.StartAsync();
        var storage = new OutboundStorage(new OutboundStorageOptions { ConnectionString = storageEmulator.ConnectionString });
        await storage.EnsureCreatedAsync(CancellationToken.None);
        var caFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(caFile, world.Pki.RootPem);
        var settings = ServeHostSettings.For(world, storageEmulator.ConnectionString, storage, caFile);
        settings["Logging:LogLevel:Default"] = "None";
        settings["CloudDelivery:Worker:MaxPollingInterval"] = "00:00:00.200";
        var port = LoopbackWorld.FreePort();
        await using var app = ServeCommand.Build($"http://127.0.0.1:{port}", settings);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var storageGone = false;
        try
        {
            // The loops start in the background: wait until the polling loop has been round once.
            string? polling;
            HttpResponseMessage healthy;
            var until = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                healthy = await http.GetAsync("/healthz");
                using var body = JsonDocument.Parse(await healthy.Content.ReadAsStringAsync());
                var loops = body.RootElement.GetProperty("checks").GetProperty("clouddelivery").GetProperty("data").GetProperty("loops");
                polling = loops.TryGetProperty(WakeUpWorker.PollingLoopName, out var loop) ? loop.GetProperty("state").GetString() : null;
                if (polling == "running" || DateTime.UtcNow >= until)
                {
                    break;
                }
                await Task.Delay(50);
            }
            Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
            Assert.Equal("running", polling);

            storageEmulator.Dispose();
            storageGone = true;
            var started = DateTime.UtcNow;
            HttpResponseMessage response;
            do
            {
                await Task.Delay(200);
                response = await http.GetAsync("/healthz");
            }
            while (response.StatusCode == HttpStatusCode.OK && DateTime.UtcNow - started < TimeSpan.FromSeconds(60));

            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("storage is not answering", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        finally
        {
            await app.StopAsync();
            if (!storageGone)
            {
                storageEmulator.Dispose();
            }
            File.Delete(caFile);
        }
    }

    [Fact]
    public async Task The_functions_health_function_answers_200_while_storage_answers_and_503_when_it_does_not()
    {
        var storage = await azurite.NewStorageAsync();
        var gone = UnreachableStorage();

        var up = await HealthOf(storage);
        var down = await HealthOf(gone);

        Assert.Equal(HttpStatusCode.OK, (HttpStatusCode)up.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (HttpStatusCode)down.StatusCode);
        using var json = JsonDocument.Parse(down.Body());
        Assert.Equal("unhealthy", json.RootElement.GetProperty("status").GetString());

        static async Task<Microsoft.AspNetCore.Http.HttpResponse> HealthOf(OutboundStorage storage)
        {
            var services = new ServiceCollection();
            services.AddSingleton(storage);
            services.AddSingleton(new ServiceHealth(TimeProvider.System));
            services.AddSingleton<ILoggerFactory>(Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
            services.AddSingleton(typeof(ILogger<>), typeof(Microsoft.Extensions.Logging.Abstractions.NullLogger<>));
            services.AddHealthChecks().AddCheck<ServiceHealthCheck>("clouddelivery");
            await using var provider = services.BuildServiceProvider();
            var function = new CloudDelivery.Functions.HealthFunctions(provider.GetRequiredService<HealthCheckService>());
            return await FunctionHttpCall.InvokeAsync(FunctionHttpCall.Request("GET", "/api/healthz"), r => function.Health(r, CancellationToken.None));
        }
    }

    [Fact]
    public async Task The_functions_submission_trigger_answers_503_with_retry_after_when_storage_does_not_answer()
    {
        await using var network = await LoopbackWorld.StartAsync();
        var gone = UnreachableStorage();
        var queue = new OutboundQueue(gone, new OutboundQueueOptions(), TimeProvider.System);
        var handler = new DomainDeliveryHandler(queue, network.CreateEngine(), "mta.loopback.test");
        var functions = new CloudDelivery.Functions.DeliveryFunctions(handler, new WakeUpWorker(queue, handler, new WakeUpWorkerOptions()), new SubmissionEndpoint(queue));
        var request = FunctionHttpCall.Request("POST", "/api/messages?from=s@sender.example&to=r@example.com", "message/rfc822", "Subject: x\r\n\r\nhi\r\n");

        var response = await FunctionHttpCall.InvokeAsync(request, r => functions.SubmitMessage(r, CancellationToken.None));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (HttpStatusCode)response.StatusCode);
        Assert.True(response.Headers.TryGetValue("Retry-After", out var retryAfter));
        Assert.Equal(SubmissionEndpoint.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), Assert.Single(retryAfter.ToArray()));
    }

    /// <summary>Storage on a loopback port where nothing listens: every request is refused.</summary>
    private static OutboundStorage UnreachableStorage()
    {
        var endpoint = $"http://127.0.0.1:{LoopbackWorld.FreePort()}/devstoreaccount1";
        return new OutboundStorage(new OutboundStorageOptions
        {
            ConnectionString = $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={Convert.ToBase64String(new byte[64])};QueueEndpoint={endpoint};TableEndpoint={endpoint};BlobEndpoint={endpoint}",
        });
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, CancellationToken cancellationToken)
    {
        while (!await condition())
        {
            await Task.Delay(50, cancellationToken);
        }
    }
}
