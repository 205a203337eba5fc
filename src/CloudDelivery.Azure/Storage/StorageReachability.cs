using Azure.Core;
using Azure.Core.Pipeline;

namespace CloudDelivery.Azure.Storage;

/// <summary>
/// Watches every storage request of this process and remembers when storage last answered and when it
/// last failed us, so health can tell the truth without requests of its own while the service is busy.
/// An answer counts as reachable unless it says the service cannot serve us: 5xx (busy, unavailable)
/// and 401/403 (our identity lost its roles, a key was rotated). No answer at all (refused connection,
/// timeout, a credential that cannot get a token) is a failure too.
/// </summary>
public sealed class StorageReachability : HttpPipelinePolicy
{
    private readonly TimeProvider time;
    private readonly object gate = new();
    private DateTimeOffset? answeredAt;
    private DateTimeOffset? failedAt;
    private string? lastError;

    public StorageReachability(TimeProvider? time = null) => this.time = time ?? TimeProvider.System;

    /// <summary>When storage last answered, when it last failed, and why it failed.</summary>
    public (DateTimeOffset? AnsweredAt, DateTimeOffset? FailedAt, string? Error) Last
    {
        get
        {
            lock (gate)
            {
                return (answeredAt, failedAt, lastError);
            }
        }
    }

    /// <summary>Records the outcome of a request that did not go through a client of ours (health's own probe).</summary>
    public void Record(int? status, Exception? error)
    {
        lock (gate)
        {
            if (error is null && status is { } code && code < 500 && code is not 401 and not 403)
            {
                answeredAt = time.GetUtcNow();
                return;
            }
            failedAt = time.GetUtcNow();
            lastError = error is null ? $"storage answered HTTP {status}" : $"{error.GetType().Name}: {error.Message}";
        }
    }

    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        try
        {
            await ProcessNextAsync(message, pipeline);
        }
        catch (Exception e) when (!message.CancellationToken.IsCancellationRequested)
        {
            Record(null, e);
            throw;
        }
        Record(message.Response.Status, null);
    }

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        try
        {
            ProcessNext(message, pipeline);
        }
        catch (Exception e) when (!message.CancellationToken.IsCancellationRequested)
        {
            Record(null, e);
            throw;
        }
        Record(message.Response.Status, null);
    }
}
