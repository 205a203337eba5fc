using System.CommandLine;
using System.Text.Json;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Cli.Commands.Queue;

/// <summary>
/// <c>clouddelivery queue hold|release|retry|fail|drop</c>: one recipient or message by id, or in bulk by
/// --domain, --sender, --tag or --all (as postsuper -h/-H/-d and mox queue hold/unhold/fail/drop). Bulk
/// forms ask first unless --yes; without a terminal to ask they refuse.
/// </summary>
internal static class QueueActionCommand
{
    public static Command Create(CliConsole console, OperatorAction action)
    {
        var (name, description) = Describe(action);
        var service = new ServiceOptions();
        var filters = new QueueFilterOptions();
        var id = new Argument<string?>("id") { Description = "A recipient id (domain/row) or a message id (all its recipients).", Arity = ArgumentArity.ZeroOrOne };
        var all = new Option<bool>("--all") { Description = $"Every recipient the action applies to ({string.Join(" or ", AppliesTo(action))})." };
        var yes = new Option<bool>("--yes") { Description = "Do not ask for confirmation of a bulk action (required without a terminal)." };
        var json = new Option<bool>("--json") { Description = "Print {changed: [ids], skipped: [{id, reason}]}." };
        var command = new Command(name, description) { id, all, yes, json };
        filters.AddTo(command, withStates: false);
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var wanted = parse.GetValue(id);
            var bulk = filters.AnyGiven(parse);
            var everything = parse.GetValue(all);
            if ((wanted is null ? 0 : 1) + (bulk ? 1 : 0) + (everything ? 1 : 0) != 1)
            {
                await console.Error.WriteLineAsync($"clouddelivery queue {name}: give an id, or --domain/--sender/--tag, or --all (one of them)");
                return CliApplication.ExitUsage;
            }
            await using var provider = service.Build(parse);
            var actions = QueueCommand.ActionsOf(provider);
            List<RecipientRecord> records;
            if (wanted is not null)
            {
                records = await actions.FindAsync(wanted, cancellationToken);
                if (records.Count == 0)
                {
                    await console.Error.WriteLineAsync($"clouddelivery queue {name}: no message or recipient {wanted}");
                    return 1;
                }
            }
            else
            {
                // Only the records the action applies to: the count asked about is the count changed.
                var selection = filters.Selection(parse, actions.Queue.Time.GetUtcNow(), AppliesTo(action));
                records = [];
                await foreach (var record in actions.ListAsync(selection, cancellationToken))
                {
                    records.Add(record);
                }
                if (!parse.GetValue(yes) && records.Count > 0)
                {
                    var question = $"{name} {records.Count} recipient(s){Scope(parse, filters, everything)}?";
                    switch (await console.ConfirmAsync(question, cancellationToken))
                    {
                        case null:
                            await console.Error.WriteLineAsync($"clouddelivery queue {name}: would {name} {records.Count} recipient(s); no terminal to confirm on, pass --yes");
                            return CliApplication.ExitUsage;
                        case false:
                            await console.Error.WriteLineAsync("Nothing changed.");
                            return 1;
                    }
                }
            }
            var result = await actions.ApplyAsync(action, records, cancellationToken);
            if (parse.GetValue(json))
            {
                await console.Output.WriteLineAsync(JsonSerializer.Serialize(QueueJson.Result(result), QueueJson.Indented));
                return 0;
            }
            foreach (var skip in result.Skipped)
            {
                await console.Output.WriteLineAsync($"{skip.Id}: skipped, {skip.Reason}");
            }
            await console.Output.WriteLineAsync($"{result.Changed.Count} recipient(s) {PastTense(action)}{(result.Skipped.Count > 0 ? $", {result.Skipped.Count} skipped" : string.Empty)}");
            return 0;
        });
        return command;
    }

    /// <summary>The states whose records the action changes (its bulk form selects only those).</summary>
    private static IReadOnlyList<string> AppliesTo(OperatorAction action) => action switch
    {
        OperatorAction.Release => [RecipientState.Held],
        OperatorAction.Hold or OperatorAction.Retry => [RecipientState.Queued],
        _ => [RecipientState.Queued, RecipientState.Held],
    };

    private static (string Name, string Description) Describe(OperatorAction action) => action switch
    {
        OperatorAction.Hold => ("hold", "Hold queued recipients: not delivered until released; they do not expire while held."),
        OperatorAction.Release => ("release", "Release held recipients: queued again, due now, their domains woken."),
        OperatorAction.Retry => ("retry", "Make queued recipients due now and wake their domains."),
        OperatorAction.Fail => ("fail", "Fail queued or held recipients now, with a DSN to the sender (\"failed by an operator\")."),
        _ => ("drop", "Stop delivering queued or held recipients, without a DSN."),
    };

    private static string PastTense(OperatorAction action) => action switch
    {
        OperatorAction.Hold => "held",
        OperatorAction.Release => "released",
        OperatorAction.Retry => "due now",
        OperatorAction.Fail => "failed",
        _ => "dropped",
    };

    private static string Scope(ParseResult parse, QueueFilterOptions filters, bool everything)
    {
        if (everything)
        {
            return " (all domains)";
        }
        var parts = new List<string>();
        if (parse.GetValue(filters.Domain) is { } domain)
        {
            parts.Add($"of {domain}");
        }
        if (parse.GetValue(filters.Sender) is { } sender)
        {
            parts.Add($"from {sender}");
        }
        if (parse.GetValue(filters.Tags) is { Length: > 0 } tags)
        {
            parts.Add($"tagged {string.Join(", ", tags)}");
        }
        return " " + string.Join(" ", parts);
    }
}
