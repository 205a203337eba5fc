using Azure.Storage.Queues.Models;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudDelivery.Azure.WakeUps;

/// <summary>
/// Queue processing settings, the same as the Functions host's queue extension settings in host.json, so
/// that <c>serve</c> and Functions behave alike.
/// </summary>
public sealed class WakeUpWorkerOptions
{
    /// <summary>Messages fetched per poll (host.json queues.batchSize).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>Fetch the next batch when no more than this many wake-ups are in hand (host.json queues.newBatchThreshold).</summary>
    public int NewBatchThreshold { get; set; } = 8;

    /// <summary>Tries before a message goes to the poison queue (host.json queues.maxDequeueCount).</summary>
    public int MaxDequeueCount { get; set; } = 5;

    /// <summary>How long a taken message stays invisible while it is handled (and before it is retried).</summary>
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Longest wait between polls of an empty queue (host.json queues.maxPollingInterval).</summary>
    public TimeSpan MaxPollingInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How often the sweeper looks for due records without a pending wake-up.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often <c>serve</c> purges final records and unneeded bodies (Functions: daily timer PurgeFinalRecords).</summary>
    public TimeSpan PurgeInterval { get; set; } = TimeSpan.FromDays(1);
}

/// <summary>
/// Takes wake-ups off the queue and hands them to the <see cref="DomainDeliveryHandler"/>, with the
/// semantics of the Functions queue trigger: a message that fails is retried after its visibility
/// timeout, and after <see cref="WakeUpWorkerOptions.MaxDequeueCount"/> tries (or at once when it cannot
/// be parsed) it moves to the poison queue, so one bad message never blocks the others.
/// </summary>
public sealed class WakeUpWorker(OutboundQueue queue, DomainDeliveryHandler handler, WakeUpWorkerOptions options, ILogger<WakeUpWorker>? logger = null, ServiceHealth? health = null)
{
    /// <summary>The name of the polling loop in health reports.</summary>
    public const string PollingLoopName = "wake-ups";

    /// <summary>The name of the sweeper loop in health reports.</summary>
    public const string SweeperLoopName = "sweeper";

    private readonly ILogger log = (ILogger?)logger ?? NullLogger.Instance;
    private readonly BackgroundLoopStatus polling = (health ?? new ServiceHealth(queue.Time)).Loop(PollingLoopName);

    public WakeUpWorkerOptions Options => options;

    /// <summary>Processes one batch; returns how many messages were taken.</summary>
    public async Task<int> PollOnceAsync(CancellationToken cancellationToken)
    {
        var messages = (await queue.Storage.UndecodedWakeUps.ReceiveMessagesAsync(options.BatchSize, options.VisibilityTimeout, cancellationToken)).Value;
        await Task.WhenAll(messages.Select(message => ProcessAsync(message, cancellationToken)));
        return messages.Length;
    }

    /// <summary>
    /// Polls until cancelled, like the Functions queue trigger: a new batch is fetched as soon as no more
    /// than <see cref="WakeUpWorkerOptions.NewBatchThreshold"/> wake-ups are still being handled, so one
    /// long domain run does not hold up the others; polling backs off while the queue is empty. Nothing a
    /// poll or a wake-up meets ends the loop: failures are logged, counted in health, and polling goes on.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var idle = TimeSpan.FromMilliseconds(100);
        var running = new List<Task>();
        while (!cancellationToken.IsCancellationRequested)
        {
            running.RemoveAll(t => t.IsCompleted);
            if (running.Count > options.NewBatchThreshold)
            {
                await Task.WhenAny(running);
                continue;
            }
            try
            {
                var messages = (await queue.Storage.UndecodedWakeUps.ReceiveMessagesAsync(options.BatchSize, options.VisibilityTimeout, cancellationToken)).Value;
                polling.Succeeded(queue.Time.GetUtcNow());
                if (messages.Length > 0)
                {
                    running.AddRange(messages.Select(message => ProcessAsync(message, cancellationToken)));
                    idle = TimeSpan.FromMilliseconds(100);
                    continue;
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Storage down, a token that cannot be had, a defect: back off and poll again.
                polling.Failed(queue.Time.GetUtcNow(), e);
                log.LogError(e, "Polling the wake-up queue failed (failure {Count} in a row)", polling.ConsecutiveFailures);
            }
            try
            {
                // Back off while the queue is empty, but poll at once when this process sends a wake-up.
                await queue.WakeUpSent.WaitAsync(idle, queue.Time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, options.MaxPollingInterval.Ticks));
        }
        try
        {
            // Let the wake-ups in hand finish (or see the cancellation) before returning.
            await Task.WhenAll(running);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Sends wake-ups for domains with due records, in case a wake-up was lost (a crash between writes).</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        // Records due for longer than a polling round are stranded: their wake-up is gone.
        var domains = await queue.DomainsDueAsync(queue.Time.GetUtcNow() - TimeSpan.FromMinutes(1), cancellationToken);
        foreach (var domain in domains)
        {
            await queue.WakeAsync(domain, TimeSpan.Zero, cancellationToken);
        }
        return domains.Count;
    }

    private async Task ProcessAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        WakeUp wakeUp;
        try
        {
            wakeUp = WakeUp.Parse(Decode(message.Body.ToString()));
        }
        catch (FormatException e)
        {
            log.LogError("Wake-up {MessageId} is malformed ({Error}); moving it to the poison queue", message.MessageId, e.Message);
            await PoisonAsync(message, cancellationToken);
            return;
        }
        try
        {
            await handler.HandleAsync(wakeUp, cancellationToken);
            await queue.Storage.WakeUps.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Left on the queue: it becomes visible again after the visibility timeout and is retried.
            log.LogError(e, "Handling wake-up for {Domain} failed (try {Try} of {Max})", wakeUp.Domain, message.DequeueCount, options.MaxDequeueCount);
            if (message.DequeueCount >= options.MaxDequeueCount)
            {
                await PoisonAsync(message, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Wake-ups are base64-encoded JSON, as the Functions queue trigger expects (host.json messageEncoding).
    /// </summary>
    /// <exception cref="FormatException">Not base64, or not UTF-8 inside.</exception>
    private static string Decode(string body)
    {
        var bytes = new byte[body.Length * 3 / 4 + 3];
        if (!Convert.TryFromBase64String(body, bytes, out var length))
        {
            throw new FormatException("wake-up is not base64 (wake-ups are base64-encoded JSON)");
        }
        try
        {
            return new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 0, length);
        }
        catch (ArgumentException e)
        {
            throw new FormatException("wake-up is not UTF-8 inside its base64", e);
        }
    }

    /// <summary>
    /// Moves a message to the poison queue as it was received (an operator sees the text a tool put there).
    /// Failing to do so is logged, not thrown: the message then becomes visible again and is retried.
    /// </summary>
    private async Task PoisonAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        try
        {
            var body = message.Body.ToString();
            var readable = TryDecode(body) ?? body;
            await queue.Storage.Poison.SendMessageAsync(readable, cancellationToken: cancellationToken);
            await queue.Storage.WakeUps.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            log.LogError(e, "Moving wake-up {MessageId} to the poison queue failed; it is retried when it becomes visible again", message.MessageId);
        }
    }

    private static string? TryDecode(string body)
    {
        try
        {
            return Decode(body);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
