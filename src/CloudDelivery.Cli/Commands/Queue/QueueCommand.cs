using System.CommandLine;
using System.Text.Json;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Queue;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Cli.Commands.Queue;

/// <summary>
/// <c>clouddelivery queue list|show|hold|release|retry|fail|drop|poison</c>: the operator's view of and hand
/// on the queue, as postqueue(1), postsuper(1), postcat(1) and <c>mox queue</c> give them.
/// </summary>
internal static class QueueCommand
{
    public static Command Create(CliConsole console) => new("queue", "Operate the queue: list, show, hold, release, retry, fail and drop recipients; the poison queue.")
    {
        QueueListCommand.Create(console),
        QueueShowCommand.Create(console),
        QueueActionCommand.Create(console, OperatorAction.Hold),
        QueueActionCommand.Create(console, OperatorAction.Release),
        QueueActionCommand.Create(console, OperatorAction.Retry),
        QueueActionCommand.Create(console, OperatorAction.Fail),
        QueueActionCommand.Create(console, OperatorAction.Drop),
        QueuePoisonCommand.Create(console.Output),
    };

    /// <summary>The operator actions over the service's own queue, reporting as the service's host name (as its DSNs do).</summary>
    public static OperatorActions ActionsOf(IServiceProvider provider) => new(
        provider.GetRequiredService<OutboundQueue>(),
        provider.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value.Hostname);
}

/// <summary>The JSON shapes the queue commands print: camelCase, one object per recipient, stable field names (README, Command-line tool).</summary>
internal static class QueueJson
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static readonly JsonSerializerOptions Compact = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>A recipient as <c>queue list --json</c> prints it (and <c>status --json</c>, with its events).</summary>
    public static object Recipient(RecipientRecord r) => new
    {
        id = r.Id,
        messageId = r.MessageId,
        sender = r.Sender,
        recipient = r.Recipient,
        state = r.State,
        attempts = r.Attempts,
        submittedAt = r.SubmittedAt,
        nextAttemptAt = r.State is RecipientState.Queued or RecipientState.Held ? r.NextAttemptAt : (DateTimeOffset?)null,
        lastAttemptAt = r.LastAttemptAt,
        lastResult = r.LastAttemptAt is null ? null : new { code = r.LastCode, enhancedCode = r.LastEnhancedCode, text = r.LastText, host = r.LastHost },
        category = r.Category,
        tags = r.TagMap,
    };

    /// <summary>What an action did, as <c>queue hold|release|retry|fail|drop --json</c> print it.</summary>
    public static object Result(OperatorResult result) => new
    {
        changed = result.Changed,
        skipped = result.Skipped.Select(s => new { id = s.Id, reason = s.Reason }),
    };
}
