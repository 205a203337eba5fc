using System.CommandLine;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>clouddelivery send</c>: submits a message to the queue and prints the ids.</summary>
internal static class SendCommand
{
    public static Command Create(TextWriter output)
    {
        var service = new ServiceOptions();
        var from = new Option<string>("--from") { Description = "Envelope sender; \"<>\" for the null sender.", Required = true };
        var to = new Option<string[]>("--to") { Description = "Recipient; repeat for more.", Required = true };
        var messageFile = new Option<FileInfo>("--message") { Description = "File with the RFC 5322 message.", Required = true };
        var requireTls = new Option<bool>("--require-tls") { Description = "REQUIRETLS (RFC 8689)." };
        var tlsRequiredNo = new Option<bool>("--tls-required-no") { Description = "As a \"TLS-Required: No\" header." };
        var tag = new Option<string[]>("--tag") { Description = "A tag key=value stored with the message and shown by status; repeat for more (wins over the message's X-CloudDelivery-Tags on the same key)." };
        var command = new Command("send", "Submit a message to the durable queue; prints the message id and an id per recipient.") { from, to, messageFile, requireTls, tlsRequiredNo, tag };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                // The service's own queue: same tables, limits and DKIM keys as the hosts.
                await using var provider = service.Build(parse);
                var queue = provider.GetRequiredService<OutboundQueue>();
                await queue.Storage.EnsureCreatedAsync(cancellationToken);
                await using var message = parse.GetValue(messageFile)!.OpenRead();
                var result = await queue.SubmitAsync(new SubmissionRequest
                {
                    Sender = parse.GetValue(from)!,
                    Recipients = parse.GetValue(to)!,
                    Message = message,
                    RequireTls = parse.GetValue(requireTls),
                    TlsRequiredNo = parse.GetValue(tlsRequiredNo),
                    Tags = TagOptions.Parse(parse.GetValue(tag)),
                }, cancellationToken);
                await output.WriteLineAsync($"message {result.MessageId} ({result.Size} bytes)");
                foreach (var recipient in result.Recipients)
                {
                    await output.WriteLineAsync($"{recipient.Recipient} {recipient.Id}");
                }
                return 0;
            }
            catch (Exception e) when (e is SubmissionException or IOException or UnauthorizedAccessException or FormatException)
            {
                await output.WriteLineAsync($"clouddelivery send: {e.Message}");
                return CliApplication.ExitUsage;
            }
        });
        return command;
    }
}

/// <summary><c>clouddelivery status [ID]</c>: records, attempts, last results and events.</summary>
internal static class StatusCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create(TextWriter output)
    {
        var service = new ServiceOptions();
        var id = new Argument<string?>("id") { Description = "A message id, or a recipient id (domain/row). Without: counts per state.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var domain = new Option<string?>("--domain") { Description = "Instead: what this recipient domain's MX was last seen to support (STARTTLS, REQUIRETLS, verification), as GET /api/domains/{domain}." };
        var command = new Command("status", "Show what happened to a message or recipient.") { id, json, domain };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var queue = provider.GetRequiredService<OutboundQueue>();
            if (parse.GetValue(domain) is { } recipientDomain)
            {
                return await DomainStatus.WriteAsync(queue, recipientDomain, parse.GetValue(json), output, cancellationToken);
            }
            var wanted = parse.GetValue(id);
            if (wanted is null)
            {
                var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
                await foreach (var record in queue.Storage.Recipients.QueryAsync<RecipientRecord>(r => r.RowKey.CompareTo(RecipientRecord.RecordRowKeyLimit) < 0, select: ["State"], cancellationToken: cancellationToken))
                {
                    counts[record.State] = counts.GetValueOrDefault(record.State) + 1;
                }
                await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(counts, Json) : string.Join(Environment.NewLine, counts.Select(c => $"{c.Key}: {c.Value}")));
                return 0;
            }
            var records = wanted.Contains('/', StringComparison.Ordinal)
                ? (await queue.FindAsync(wanted, cancellationToken) is { } one ? [one] : [])
                : await queue.FindMessageAsync(wanted, cancellationToken);
            if (records.Count == 0)
            {
                await output.WriteLineAsync($"clouddelivery status: no message or recipient {wanted}");
                return 1;
            }
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(ToJson(records));
                return 0;
            }
            foreach (var record in records)
            {
                await output.WriteLineAsync($"{record.Recipient} [{record.Id}]: {record.State}, {record.Attempts} attempt(s){(record.State == RecipientState.Queued ? $", next {record.NextAttemptAt:u}" : string.Empty)}");
                if (record.Tags is not null)
                {
                    await output.WriteLineAsync($"  tags: {string.Join("; ", record.TagMap.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))}");
                }
                if (record.LastAttemptAt is not null)
                {
                    await output.WriteLineAsync($"  last: {record.LastCode} {record.LastEnhancedCode} {record.LastText} ({record.LastHost ?? "-"}, {record.Category})");
                }
                foreach (var e in record.EventList)
                {
                    await output.WriteLineAsync($"  {e.At:u} {e.Type}: {e.Detail}");
                }
            }
            return 0;
        });
        return command;
    }

    /// <summary>The records as the JSON the CLI and GET /api/messages/{id} print.</summary>
    public static string ToJson(IEnumerable<RecipientRecord> records) => JsonSerializer.Serialize(records.Select(r => new
    {
        id = r.Id,
        messageId = r.MessageId,
        sender = r.Sender,
        recipient = r.Recipient,
        tags = r.TagMap,
        state = r.State,
        attempts = r.Attempts,
        nextAttemptAt = r.State == RecipientState.Queued ? r.NextAttemptAt : (DateTimeOffset?)null,
        lastAttemptAt = r.LastAttemptAt,
        lastResult = r.LastAttemptAt is null ? null : new { code = r.LastCode, enhancedCode = r.LastEnhancedCode, text = r.LastText, host = r.LastHost },
        category = r.Category,
        events = r.EventList,
    }), Json);
}

/// <summary><c>clouddelivery queue list|retry|drop</c>: operators' view of and hand on the queue.</summary>
internal static class QueueCommand
{
    public static Command Create(TextWriter output)
    {
        var service = new ServiceOptions();
        var domain = new Option<string?>("--domain") { Description = "Only this recipient domain." };
        var list = new Command("list", "List queued recipients (waiting for a first attempt or a retry).") { domain };
        service.AddTo(list);
        list.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var queue = provider.GetRequiredService<OutboundQueue>();
            var only = parse.GetValue(domain);
            await foreach (var record in queue.Storage.Recipients.QueryAsync<RecipientRecord>(r => r.State == RecipientState.Queued, cancellationToken: cancellationToken))
            {
                if (only is null || record.PartitionKey == only)
                {
                    await output.WriteLineAsync($"{record.Id} {record.Recipient} attempts {record.Attempts} next {record.NextAttemptAt:u} last {record.LastCode} {record.LastText}");
                }
            }
            return 0;
        });
        var retryId = new Argument<string>("id") { Description = "Recipient id (domain/row)." };
        var retry = new Command("retry", "Make a queued recipient due now and wake its domain.") { retryId };
        service.AddTo(retry);
        retry.SetAction((parse, cancellationToken) => ChangeAsync(service, parse, parse.GetValue(retryId)!, "retry", output, cancellationToken));
        var dropId = new Argument<string>("id") { Description = "Recipient id (domain/row)." };
        var drop = new Command("drop", "Stop delivering a recipient (no DSN).") { dropId };
        service.AddTo(drop);
        drop.SetAction((parse, cancellationToken) => ChangeAsync(service, parse, parse.GetValue(dropId)!, "drop", output, cancellationToken));
        var requeue = new Option<bool>("--requeue") { Description = "Move wake-ups that name a valid domain back to the wake-up queue." };
        var clear = new Option<bool>("--clear") { Description = "Delete every poison message (records are unaffected; the sweeper wakes due domains anyway)." };
        var poison = new Command("poison", "Show the poison queue: wake-ups that failed repeatedly or could not be parsed.") { requeue, clear };
        service.AddTo(poison);
        poison.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var queue = provider.GetRequiredService<OutboundQueue>();
            return await PoisonAsync(queue, parse.GetValue(requeue), parse.GetValue(clear), output, cancellationToken);
        });
        return new Command("queue", "Operate the queue.") { list, retry, drop, poison };
    }

    private static async Task<int> PoisonAsync(OutboundQueue queue, bool requeue, bool clear, TextWriter output, CancellationToken cancellationToken)
    {
        var poison = queue.Storage.Poison;
        if (!requeue && !clear)
        {
            var count = (await poison.GetPropertiesAsync(cancellationToken)).Value.ApproximateMessagesCount;
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
        await output.WriteLineAsync($"{moved} requeued, {deleted} deleted, {kept.Count} kept (malformed; --clear deletes them)");
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

    private static async Task<int> ChangeAsync(ServiceOptions service, ParseResult parse, string id, string action, TextWriter output, CancellationToken cancellationToken)
    {
        await using var provider = service.Build(parse);
        var queue = provider.GetRequiredService<OutboundQueue>();
        var record = await queue.FindAsync(id, cancellationToken);
        if (record is null || record.State != RecipientState.Queued)
        {
            await output.WriteLineAsync($"clouddelivery queue {action}: {id} is not a queued recipient");
            return 1;
        }
        var now = queue.Time.GetUtcNow();
        if (action == "retry")
        {
            record.NextAttemptAt = now;
            record.AddEvent(now, "retry", "operator asked for an attempt now");
        }
        else
        {
            record.State = RecipientState.Dropped;
            record.AddEvent(now, "dropped", "removed by an operator");
        }
        await queue.SaveAsync([record]);
        if (action == "retry")
        {
            await queue.WakeAsync(record.PartitionKey, TimeSpan.Zero, cancellationToken);
        }
        await output.WriteLineAsync($"{id}: {(action == "retry" ? "due now" : "dropped")}");
        return 0;
    }
}
