using System.CommandLine;
using System.Text.Json;
using Azure.Data.Tables;
using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Queue;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>clouddelivery events pending|parked|replay</c>: the operator's view of the event outbox and of parked events.</summary>
internal static class EventCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Where confirmation is read; null when stdin is not a terminal (then only --yes replays).</summary>
    internal static Func<TextReader?> Confirmation { get; set; } = () => Console.IsInputRedirected ? null : Console.In;

    public static Command Create(TextWriter output) => new("events", "Recipient events: the outbox and events parked by failing sinks.")
    {
        Pending(output),
        Parked(output),
        Replay(output),
    };

    private static Command Pending(TextWriter output)
    {
        var service = new ServiceOptions();
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var command = new Command("pending", "List events in the outbox, waiting to be published.") { json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var queue = provider.GetRequiredService<OutboundQueue>();
            var pending = new List<OutboxEntry>();
            await foreach (var entity in queue.Storage.Recipients.QueryAsync<TableEntity>(EventOutbox.RowFilter, cancellationToken: cancellationToken))
            {
                if (EventOutbox.FromEntity(entity) is { } entry)
                {
                    pending.Add(entry);
                }
            }
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(pending.Select(e => new { id = e.Event.Id, type = TypeOf(e.Event), createdAt = e.CreatedAt, sinks = e.SinkNames }), Json));
                return 0;
            }
            await output.WriteLineAsync($"{pending.Count} event(s) pending");
            foreach (var entry in pending)
            {
                await output.WriteLineAsync($"{entry.CreatedAt:u} {entry.Event.Id} {TypeOf(entry.Event)}{(entry.Sinks is null ? string.Empty : $" (for {entry.Sinks})")}");
            }
            return 0;
        });
        return command;
    }

    private static Command Parked(TextWriter output)
    {
        var service = new ServiceOptions();
        var sink = new Option<string?>("--sink") { Description = "Only this sink's parked events." };
        var json = new Option<bool>("--json") { Description = "Print JSON (with each event)." };
        var command = new Command("parked", "List events parked after a sink kept failing for Events:Retention.") { sink, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var parked = new List<ParkedEvent>();
            await foreach (var item in provider.GetRequiredService<EventDispatcher>().Parked.ListAsync(parse.GetValue(sink), cancellationToken))
            {
                parked.Add(item);
            }
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(parked.Select(p => new { sink = p.Sink, id = p.Id, createdAt = p.CreatedAt, parkedAt = p.ParkedAt, @event = JsonDocument.Parse(p.Json).RootElement }), Json));
                return 0;
            }
            await output.WriteLineAsync($"{parked.Count} event(s) parked");
            foreach (var item in parked)
            {
                await output.WriteLineAsync($"{item.ParkedAt:u} {item.Sink} {item.Id}");
            }
            return 0;
        });
        return command;
    }

    private static Command Replay(TextWriter output)
    {
        var service = new ServiceOptions();
        var sink = new Option<string?>("--sink") { Description = "Only this sink's parked events." };
        var yes = new Option<bool>("--yes") { Description = "Do not ask for confirmation (required when stdin is not a terminal)." };
        var json = new Option<bool>("--json") { Description = "Print {replayed}." };
        var command = new Command("replay", "Move parked events back into the outbox, for the sink that parked them; the service's sweep sends them.") { sink, yes, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var parked = provider.GetRequiredService<EventDispatcher>().Parked;
            var only = parse.GetValue(sink);
            if (!parse.GetValue(yes))
            {
                var count = 0;
                await foreach (var _ in parked.ListAsync(only, cancellationToken))
                {
                    count++;
                }
                if (Confirmation() is not { } input)
                {
                    await output.WriteLineAsync($"clouddelivery events replay: {count} event(s) would be replayed; stdin is not a terminal, pass --yes");
                    return CliApplication.ExitUsage;
                }
                await output.WriteAsync($"Replay {count} parked event(s){(only is null ? string.Empty : $" of {only}")}? [y/N] ");
                if (await input.ReadLineAsync(cancellationToken) is not ("y" or "Y" or "yes"))
                {
                    await output.WriteLineAsync("Nothing replayed.");
                    return 1;
                }
            }
            var replayed = await parked.ReplayAsync(only, cancellationToken);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(new { replayed }, Json));
                return 0;
            }
            await output.WriteLineAsync($"{replayed} event(s) back in the outbox; the service publishes them within Events:SweepInterval + Events:AdoptAfter");
            return 0;
        });
        return command;
    }

    private static string TypeOf(OutboxEvent outboxEvent)
    {
        using var document = JsonDocument.Parse(outboxEvent.Json);
        return document.RootElement.TryGetProperty("type", out var type) ? type.GetString() ?? "?" : "?";
    }
}
