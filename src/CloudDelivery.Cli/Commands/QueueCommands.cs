using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using CloudDelivery.Azure.Queue;
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
        var json = new Option<bool>("--json") { Description = "Print {messageId, size, recipients: [{recipient, id, status, reason}]}." };
        var command = new Command("send", "Submit a message to the durable queue; prints the message id and an id per recipient.") { from, to, messageFile, requireTls, tlsRequiredNo, tag, json };
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
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(new { messageId = result.MessageId, size = result.Size, recipients = result.Recipients.Select(r => new { recipient = r.Recipient, id = r.Id, status = r.Status, reason = r.Reason }) }, Queue.QueueJson.Indented));
                    return 0;
                }
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
    public static Command Create(TextWriter output)
    {
        var service = new ServiceOptions();
        var id = new Argument<string?>("id") { Description = "A message id, or a recipient id (domain/row). Without: counts per state.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var domain = new Option<string?>("--domain") { Description = "Instead: what this recipient domain's MX was last seen to support (STARTTLS, REQUIRETLS, verification), as GET /api/domains/{domain}." };
        var command = new Command("status", "Show what happened to a message or recipient.") { id, json, domain };
        service.AddTo(command);
        var watch = new StatusWatchOptions();
        watch.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var queue = provider.GetRequiredService<OutboundQueue>();
            if (parse.GetValue(domain) is { } recipientDomain)
            {
                return await DomainStatus.WriteAsync(queue, provider.GetRequiredService<CloudDelivery.Azure.Shaping.DestinationShaping>(), recipientDomain, parse.GetValue(json), output, cancellationToken);
            }
            var wanted = parse.GetValue(id);
            return await watch.RunAsync(parse, queue.Time, output, parse.GetValue(json), compact => PrintAsync(queue, wanted, parse.GetValue(json), compact, output, cancellationToken), cancellationToken);
        });
        return command;
    }

    /// <summary>Prints the counts per state, or the records of <paramref name="wanted"/>, once; <paramref name="compact"/>: JSON on one line (status --watch --json).</summary>
    private static async Task<int> PrintAsync(OutboundQueue queue, string? wanted, bool json, bool compact, TextWriter output, CancellationToken cancellationToken)
    {
        if (wanted is null)
        {
            var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            await foreach (var record in queue.Storage.Recipients.QueryAsync<RecipientRecord>(r => r.RowKey.CompareTo(RecipientRecord.RecordRowKeyLimit) < 0, select: ["State"], cancellationToken: cancellationToken))
            {
                counts[record.State] = counts.GetValueOrDefault(record.State) + 1;
            }
            await output.WriteLineAsync(json ? JsonSerializer.Serialize(counts, compact ? Queue.QueueJson.Compact : Queue.QueueJson.Indented) : string.Join(Environment.NewLine, counts.Select(c => $"{c.Key}: {c.Value}")));
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
        if (json)
        {
            await output.WriteLineAsync(ToJson(records, indented: !compact));
            return 0;
        }
        foreach (var record in records)
        {
            await output.WriteLineAsync($"{record.Recipient} [{record.Id}]: {record.State}, {record.Attempts} attempt(s){(record.State is RecipientState.Queued or RecipientState.Held ? $", next {record.NextAttemptAt:u}" : string.Empty)}");
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
    }

    /// <summary>
    /// The records as <c>status --json</c> and GET /api/messages/{id} print them: each recipient exactly as
    /// <c>queue list --json</c> shows it (<see cref="Queue.QueueJson.Recipient"/>), plus its events; one
    /// line when not <paramref name="indented"/> (status --watch --json prints NDJSON).
    /// </summary>
    public static string ToJson(IEnumerable<RecipientRecord> records, bool indented = true)
    {
        var array = new JsonArray();
        foreach (var record in records)
        {
            var node = JsonSerializer.SerializeToNode(Queue.QueueJson.Recipient(record), Queue.QueueJson.Compact)!.AsObject();
            node["events"] = JsonSerializer.SerializeToNode(record.EventList, Queue.QueueJson.Compact);
            array.Add(node);
        }
        return array.ToJsonString(indented ? Queue.QueueJson.Indented : Queue.QueueJson.Compact);
    }
}
