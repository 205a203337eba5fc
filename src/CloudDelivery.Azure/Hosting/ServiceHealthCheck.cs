using System.Text.Json;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Dns;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// The one health check of both hosts: unhealthy when storage does not answer (or answers that it cannot
/// serve us) or when a background loop has died; degraded when a loop keeps failing its rounds or the
/// resolver self-check found the resolver not validating DNSSEC or not answering. Storage
/// is judged from the process's own traffic (<see cref="StorageReachability"/>), so a busy host costs no
/// extra request; only when storage has not been heard from for <see cref="QuietAfter"/> does the check
/// ask it itself, with a deadline of <see cref="ProbeTimeout"/>.
/// </summary>
public sealed class ServiceHealthCheck(ServiceHealth health, OutboundStorage storage) : IHealthCheck
{
    /// <summary>Storage heard from within this is taken as the current state; older news is checked anew.</summary>
    public static readonly TimeSpan QuietAfter = TimeSpan.FromSeconds(30);

    /// <summary>How long the check's own storage request may take before storage counts as unreachable.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Failed rounds in a row after which a loop makes the service degraded.</summary>
    public const int DegradedAfterFailures = 3;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var now = health.Time.GetUtcNow();
        var (answered, failed, _) = storage.Reachability.Last;
        if (!Recent(answered) && !Recent(failed))
        {
            await ProbeAsync(cancellationToken);
        }
        (answered, failed, var error) = storage.Reachability.Last;
        var storageOk = answered is { } a && (failed is not { } f || a > f);
        var loops = health.Loops;
        var dead = loops.Where(l => l.State == BackgroundLoopState.Dead).Select(l => l.Name).ToArray();
        var failing = loops.Where(l => l.ConsecutiveFailures >= DegradedAfterFailures).Select(l => l.Name).ToArray();
        var resolver = health.Resolver.Current;

        var data = new Dictionary<string, object>
        {
            ["storage"] = new Dictionary<string, object?>
            {
                ["reachable"] = storageOk,
                ["answeredAt"] = answered,
                ["failedAt"] = failed,
                ["error"] = storageOk ? null : error,
            },
            ["loops"] = loops.ToDictionary(l => l.Name, l => (object)new Dictionary<string, object?>
            {
                ["state"] = l.State.ToString().ToLowerInvariant(),
                ["lastSuccess"] = l.LastSuccess,
                ["consecutiveFailures"] = l.ConsecutiveFailures,
                ["lastError"] = l.LastError,
            }),
            ["resolver"] = new Dictionary<string, object?>
            {
                ["state"] = resolver.State.Name(),
                ["resolver"] = resolver.Resolver,
                ["checkedAt"] = resolver.CheckedAt,
                ["detail"] = resolver.Detail,
            },
        };
        if (!storageOk)
        {
            return HealthCheckResult.Unhealthy($"storage is not answering: {error ?? "no answer yet"}", data: data);
        }
        if (dead.Length > 0)
        {
            return HealthCheckResult.Unhealthy($"background loop died: {string.Join(", ", dead)}", data: data);
        }
        // A resolver that does not validate leaves mail flowing with opportunistic TLS, only without DANE
        // (RFC 7672 §2.1.1): degraded, never unhealthy.
        var degraded = new List<string>();
        if (failing.Length > 0)
        {
            degraded.Add($"background loop failing: {string.Join(", ", failing)}");
        }
        if (resolver.Degrades)
        {
            degraded.Add($"resolver {resolver.Resolver} is {resolver.State.Name()}, DANE is off: {resolver.Detail}");
        }
        if (degraded.Count > 0)
        {
            return HealthCheckResult.Degraded(string.Join("; ", degraded), data: data);
        }
        return HealthCheckResult.Healthy("storage answers and every background loop runs", data);

        bool Recent(DateTimeOffset? at) => at is { } t && now - t < QuietAfter;
    }

    private async Task ProbeAsync(CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(ProbeTimeout);
        try
        {
            // One cheap request; the reachability policy on the client records its answer.
            await storage.WakeUps.GetPropertiesAsync(deadline.Token);
        }
        catch (global::Azure.RequestFailedException)
        {
            // An answer (e.g. 404 for a queue not created yet) is recorded by the policy already.
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            storage.Reachability.Record(null, e is OperationCanceledException ? new TimeoutException($"no answer from storage within {ProbeTimeout.TotalSeconds:0} s", e) : e);
        }
    }

    /// <summary>The JSON both hosts answer health requests with: status, description and the checks' data.</summary>
    public static string ToJson(HealthReport report)
    {
        var entries = report.Entries.ToDictionary(e => e.Key, e => new Dictionary<string, object?>
        {
            ["status"] = e.Value.Status.ToString().ToLowerInvariant(),
            ["description"] = e.Value.Description,
            ["data"] = e.Value.Data,
        });
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["status"] = report.Status.ToString().ToLowerInvariant(),
            ["checks"] = entries,
        });
    }
}
