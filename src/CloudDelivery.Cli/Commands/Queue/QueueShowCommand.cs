using System.CommandLine;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using MimeKit;

namespace CloudDelivery.Cli.Commands.Queue;

/// <summary>
/// <c>clouddelivery queue show ID</c>: a message's envelope, its stored header section, size, and each
/// recipient's attempts, tags and events (postcat -h -e, mox queue dump); <c>--body</c> streams the stored
/// message itself, byte for byte, as the queue sends it.
/// </summary>
internal static class QueueShowCommand
{
    /// <summary>How much of the stored message is read to find its header section; the rest is never read (without --body).</summary>
    private const int MaxHeaderBytes = 256 * 1024;

    public static Command Create(CliConsole console)
    {
        var service = new ServiceOptions();
        var id = new Argument<string>("id") { Description = "A recipient id (domain/row) or a message id." };
        var body = new Option<bool>("--body") { Description = "Print the stored message (bytes as stored, to stdout) instead." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: envelope, headers, size and recipients with their events." };
        var command = new Command("show", "Show a queued message: envelope, headers, size, attempts, tags and events.") { id, body, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var provider = service.Build(parse);
            var actions = QueueCommand.ActionsOf(provider);
            var wanted = parse.GetValue(id)!;
            var records = await actions.FindAsync(wanted, cancellationToken);
            if (records.Count == 0)
            {
                await console.Error.WriteLineAsync($"clouddelivery queue show: no message or recipient {wanted}");
                return 1;
            }
            var first = records[0];
            if (parse.GetValue(body))
            {
                await console.Output.FlushAsync(cancellationToken);
                await using var stored = (await actions.Queue.BodyOfAsync(first, records, cancellationToken)).OpenRead();
                var raw = console.RawOutput();
                // Copied in buffers: memory stays flat whatever the message's size.
                await stored.CopyToAsync(raw, cancellationToken);
                await raw.FlushAsync(cancellationToken);
                return 0;
            }
            IReadOnlyList<(string Name, string Value)> headers;
            string? headerError = null;
            try
            {
                await using var stored = (await actions.Queue.BodyOfAsync(first, records, cancellationToken)).OpenRead();
                headers = await ReadHeadersAsync(stored, cancellationToken);
            }
            catch (Exception e) when (e is global::Azure.RequestFailedException or InvalidOperationException or IOException)
            {
                // The records are worth showing without their body (a purged blob, a missing inline holder).
                headers = [];
                headerError = e.Message.Split('\n')[0];
            }
            if (parse.GetValue(json))
            {
                await console.Output.WriteLineAsync(JsonSerializer.Serialize(
                    new
                    {
                        messageId = first.MessageId,
                        sender = first.Sender,
                        size = first.BodySize,
                        submittedAt = first.SubmittedAt,
                        requireTls = first.TlsRequirement == RecipientRecordMapping.RequireTlsColumn,
                        isDsn = first.IsDsn,
                        headers = headers.Select(h => new { name = h.Name, value = h.Value }),
                        headerError,
                        tags = first.TagMap,
                        recipients = records.Select(r => new { recipient = QueueJson.Recipient(r), events = r.EventList }),
                    },
                    QueueJson.Indented));
                return 0;
            }
            var output = console.Output;
            await output.WriteLineAsync($"message {first.MessageId}, {first.BodySize} bytes, submitted {first.SubmittedAt:u}");
            await output.WriteLineAsync($"from {(first.Sender.Length == 0 ? "<>" : first.Sender)}{(first.IsDsn ? " (DSN)" : string.Empty)}, TLS {first.TlsRequirement}");
            if (first.Tags is not null)
            {
                await output.WriteLineAsync($"tags: {string.Join("; ", first.TagMap.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))}");
            }
            await output.WriteLineAsync(headerError is null ? "headers:" : $"headers: not readable ({headerError})");
            foreach (var (name, value) in headers)
            {
                await output.WriteLineAsync($"  {name}: {value}");
            }
            foreach (var record in records)
            {
                await output.WriteLineAsync($"{record.Recipient} [{record.Id}]: {record.State}, {record.Attempts} attempt(s){(record.State is RecipientState.Queued or RecipientState.Held ? $", next {record.NextAttemptAt:u}" : string.Empty)}");
                if (record.LastAttemptAt is not null)
                {
                    await output.WriteLineAsync($"  last: {record.LastCode} {record.LastEnhancedCode} {record.LastText} ({record.LastHost ?? "-"})");
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

    /// <summary>
    /// The header fields of a stored message, unfolded: only its header section is read, at most
    /// <see cref="MaxHeaderBytes"/>, up to the blank line that ends it (RFC 5322 §2.1).
    /// </summary>
    internal static async Task<IReadOnlyList<(string Name, string Value)>> ReadHeadersAsync(Stream message, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxHeaderBytes];
        var length = 0;
        var end = -1;
        while (length < buffer.Length && end < 0)
        {
            var read = await message.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0)
            {
                break;
            }
            // Search from just before the new bytes: the blank line may straddle two reads.
            var from = Math.Max(0, length - 3);
            length += read;
            var at = buffer.AsSpan(from, length - from).IndexOf("\r\n\r\n"u8);
            end = at < 0 ? -1 : from + at + 4;
        }
        var section = end < 0 ? buffer.AsMemory(0, length) : buffer.AsMemory(0, end);
        try
        {
            var headers = HeaderList.Load(new MemoryStream(section.ToArray()), cancellationToken);
            // MimeKit unfolds values; a line without a field name (": x") is not a header field and is left out.
            return headers.Where(h => h.Field.Length > 0).Select(h => (h.Field, h.Value.Trim())).ToList();
        }
        catch (FormatException)
        {
            // Not parseable as headers (a message stored from raw bytes that are not RFC 5322): none shown.
            return [];
        }
    }
}
