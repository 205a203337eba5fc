using System.CommandLine;
using System.Text.Json;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Cli.Commands.Queue;

/// <summary><c>clouddelivery queue list</c>: recipients by domain, sender, state, age and tag, as postqueue -p / mox queue list.</summary>
internal static class QueueListCommand
{
    public static Command Create(CliConsole console)
    {
        var service = new ServiceOptions();
        var filters = new QueueFilterOptions();
        var json = new Option<bool>("--json") { Description = "Print a JSON array, one object per recipient." };
        var command = new Command("list", "List recipients: by default those still to be delivered (queued and held).") { json };
        filters.AddTo(command);
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var actions = QueueCommand.ActionsOf(provider);
            var selection = filters.Selection(parse, actions.Queue.Time.GetUtcNow());
            var asJson = parse.GetValue(json);
            var output = console.Output;
            if (asJson)
            {
                // Written element by element: a long queue does not build one string in memory.
                await output.WriteAsync('[');
            }
            var count = 0;
            await foreach (var record in actions.ListAsync(selection, cancellationToken))
            {
                if (asJson)
                {
                    await output.WriteAsync($"{(count == 0 ? string.Empty : ",")}{Environment.NewLine}  {JsonSerializer.Serialize(QueueJson.Recipient(record), QueueJson.Compact)}");
                }
                else
                {
                    var next = record.State is RecipientState.Queued or RecipientState.Held ? $" next {record.NextAttemptAt:u}" : string.Empty;
                    var last = record.LastAttemptAt is null ? string.Empty : $" last {record.LastCode} {record.LastText}";
                    await output.WriteLineAsync($"{record.Id} {record.State} {record.Recipient} from {(record.Sender.Length == 0 ? "<>" : record.Sender)} attempts {record.Attempts}{next}{last}");
                }
                count++;
            }
            if (asJson)
            {
                await output.WriteLineAsync($"{(count == 0 ? string.Empty : Environment.NewLine)}]");
            }
            return 0;
        });
        return command;
    }
}

/// <summary>The selection flags <c>queue list</c> takes and the bulk forms of the actions share.</summary>
internal sealed class QueueFilterOptions
{
    public Option<string?> Domain { get; } = new("--domain") { Description = "Only this recipient domain." };

    public Option<string?> Sender { get; } = new("--sender") { Description = "Only this envelope sender (\"<>\": the null sender, i.e. DSNs)." };

    public Option<string[]> States { get; } = new("--state")
    {
        Description = $"Only these states (repeatable): {string.Join(", ", QueueSelection.AllStates)}, or all. Default: queued and held.",
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<TimeSpan?> OlderThan { get; } = new("--older-than") { Description = "Only recipients submitted longer ago than this (30m, 2h, 1d).", CustomParser = OperatorDuration.Parse };

    public Option<TimeSpan?> NewerThan { get; } = new("--newer-than") { Description = "Only recipients submitted within this (30m, 2h, 1d).", CustomParser = OperatorDuration.Parse };

    public Option<string[]> Tags { get; } = new("--tag") { Description = "Only recipients whose message has this tag key=value (repeatable: all must match)." };

    public QueueFilterOptions()
    {
        States.AcceptOnlyFromAmong([.. QueueSelection.AllStates, "all"]);
    }

    public void AddTo(Command command, bool withStates = true)
    {
        command.Options.Add(Domain);
        command.Options.Add(Sender);
        if (withStates)
        {
            command.Options.Add(States);
            command.Options.Add(OlderThan);
            command.Options.Add(NewerThan);
        }
        command.Options.Add(Tags);
    }

    /// <summary>Whether any selection flag was given (the bulk form of an action).</summary>
    public bool AnyGiven(ParseResult parse) => parse.GetValue(Domain) is not null || parse.GetValue(Sender) is not null || parse.GetValue(Tags) is { Length: > 0 };

    /// <exception cref="FormatException">A tag is not key=value, or the domain or sender does not parse (when queried).</exception>
    public QueueSelection Selection(ParseResult parse, DateTimeOffset now, IReadOnlyList<string>? states = null)
    {
        var given = parse.GetResult(States) is null ? null : parse.GetValue(States);
        return new QueueSelection
        {
            Domain = parse.GetValue(Domain),
            Sender = parse.GetValue(Sender),
            States = states ?? (given is not { Length: > 0 } ? QueueSelection.Pending : given.Contains("all") ? QueueSelection.AllStates : given.Distinct(StringComparer.Ordinal).ToList()),
            SubmittedBefore = parse.GetResult(OlderThan) is null ? null : now - parse.GetValue(OlderThan),
            SubmittedAfter = parse.GetResult(NewerThan) is null ? null : now - parse.GetValue(NewerThan),
            Tags = parse.GetValue(Tags) is { Length: > 0 } tags ? TagOptions.Parse(tags) : null,
        };
    }
}
