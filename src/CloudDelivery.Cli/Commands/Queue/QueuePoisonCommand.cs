using System.CommandLine;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands.Queue;

/// <summary><c>clouddelivery queue poison</c>: wake-ups that failed repeatedly or could not be parsed; requeue or clear them.</summary>
internal static class QueuePoisonCommand
{
    public static Command Create(TextWriter output)
    {
        var service = new ServiceOptions();
        var requeue = new Option<bool>("--requeue") { Description = "Move wake-ups that name a valid domain back to the wake-up queue." };
        var clear = new Option<bool>("--clear") { Description = "Delete every poison message (records are unaffected; the sweeper wakes due domains anyway)." };
        var json = new Option<bool>("--json") { Description = "Print {count, oldest: [{insertedOn, description}]}, or {requeued, deleted, kept}." };
        var poison = new Command("poison", "Show the poison queue: wake-ups that failed repeatedly or could not be parsed.") { requeue, clear, json };
        service.AddTo(poison);
        poison.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var queue = provider.GetRequiredService<OutboundQueue>();
            return await PoisonAsync(queue, parse.GetValue(requeue), parse.GetValue(clear), parse.GetValue(json), output, cancellationToken);
        });
        return poison;
    }

    private static async Task<int> PoisonAsync(OutboundQueue queue, bool requeue, bool clear, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        var poison = queue.Storage.Poison;
        if (!requeue && !clear)
        {
            var count = (await poison.GetPropertiesAsync(cancellationToken)).Value.ApproximateMessagesCount;
            if (json)
            {
                var oldest = (await poison.PeekMessagesAsync(32, cancellationToken)).Value.Select(m => new { insertedOn = m.InsertedOn, description = Describe(m.Body.ToString()) });
                await output.WriteLineAsync(System.Text.Json.JsonSerializer.Serialize(new { count, oldest }, QueueJson.Indented));
                return 0;
            }
            await output.WriteLineAsync($"{count} message(s) in {poison.Name}{(count > 32 ? "; the oldest 32:" : string.Empty)}");
            foreach (var message in (await poison.PeekMessagesAsync(32, cancellationToken)).Value)
            {
                await output.WriteLineAsync($"{message.InsertedOn:u} {Describe(message.Body.ToString())}");
            }
            return 0;
        }
        int moved = 0, deleted = 0;
        var kept = new List<(string Id, string PopReceipt)>();
        while (true)
        {
            // Taken messages stay invisible meanwhile, so one pass sees each once; kept ones are shown again at the end.
            var batch = (await poison.ReceiveMessagesAsync(32, TimeSpan.FromMinutes(5), cancellationToken)).Value;
            if (batch.Length == 0)
            {
                break;
            }
            foreach (var message in batch)
            {
                WakeUp? wakeUp = null;
                try
                {
                    wakeUp = WakeUp.Parse(message.Body.ToString());
                }
                catch (FormatException)
                {
                }
                if (wakeUp is not null && requeue)
                {
                    await queue.WakeAsync(wakeUp.Domain, TimeSpan.Zero, cancellationToken);
                    moved++;
                }
                else if (!clear)
                {
                    kept.Add((message.MessageId, message.PopReceipt));
                    continue;
                }
                await poison.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken);
                deleted += wakeUp is not null && requeue ? 0 : 1;
            }
        }
        foreach (var (id, popReceipt) in kept)
        {
            try
            {
                await poison.UpdateMessageAsync(id, popReceipt, visibilityTimeout: TimeSpan.Zero, cancellationToken: cancellationToken);
            }
            catch (global::Azure.RequestFailedException e) when (e.Status is 400 or 404)
            {
                // A long pass outlived the message's invisibility: it is visible again (or taken) already.
            }
        }
        await output.WriteLineAsync(json
            ? System.Text.Json.JsonSerializer.Serialize(new { requeued = moved, deleted, kept = kept.Count }, QueueJson.Indented)
            : $"{moved} requeued, {deleted} deleted, {kept.Count} kept (malformed; --clear deletes them)");
        return 0;
    }

    private static string Describe(string body)
    {
        try
        {
            return $"wake-up for {WakeUp.Parse(body).Domain}";
        }
        catch (FormatException e)
        {
            var shown = body.Length > 80 ? body[..80] + "…" : body;
            return $"malformed ({e.Message}): {shown.ReplaceLineEndings(" ")}";
        }
    }
}
