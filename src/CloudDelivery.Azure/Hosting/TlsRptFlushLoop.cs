using CloudDelivery.Azure.TlsRpt;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// Writes the TLSRPT results delivery runs keep in memory (see <see cref="TlsRptResultStore.FlushInterval"/>)
/// every interval and once more when the host stops, supervised, in both hosts: <c>serve</c> through
/// <see cref="CloudDeliveryLoops"/>, the Functions worker as <see cref="TlsRptFlushService"/>.
/// </summary>
public static class TlsRptFlushLoop
{
    public const string LoopName = "tlsrpt-results";

    /// <summary>How long the last flush at shutdown may take: the host is going away.</summary>
    private static readonly TimeSpan FinalFlushLimit = TimeSpan.FromSeconds(10);

    public static async Task RunAsync(TlsRptResultStore store, ServiceHealth health, Action onDeath, TimeProvider time, ILogger log, CancellationToken cancellationToken)
    {
        if (store.FlushInterval <= TimeSpan.Zero)
        {
            return;
        }
        await BackgroundLoop.SupervisePeriodicAsync(health, LoopName, _ => store.FlushInterval, store.FlushAsync, onDeath, time, log, cancellationToken);
        using var limit = new CancellationTokenSource(FinalFlushLimit);
        try
        {
            await store.FlushAsync(limit.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or global::Azure.RequestFailedException)
        {
            log.LogWarning(e, "Writing the last TLSRPT results at shutdown failed; {Count} domains' counts are lost", store.PendingCount);
        }
    }
}

/// <summary>The TLSRPT results flush in the Functions worker (which has no <see cref="CloudDeliveryLoops"/>): supervised while the host runs, and once more as it stops.</summary>
public sealed class TlsRptFlushService(TlsRptResultStore store, ServiceHealth health, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<TlsRptFlushService>? logger = null) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        TlsRptFlushLoop.RunAsync(store, health, lifetime.StopApplication, time, (ILogger?)logger ?? NullLogger.Instance, stoppingToken);
}
