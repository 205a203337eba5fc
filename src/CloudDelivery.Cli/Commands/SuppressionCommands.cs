using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.Suppression;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>clouddelivery suppressions list|add|remove|show</c>: the suppression list over the service's own
/// table (as /api/suppressions). A change made here reaches running instances at their next refresh.
/// </summary>
internal static class SuppressionCommand
{
    public static Command Create(TextWriter output)
    {
        var command = new Command("suppressions", "List, add, remove and show suppressed addresses (per sender domain or global).")
        {
            List(output),
            Add(output),
            Remove(output),
            Show(output),
        };
        return command;
    }

    private static Option<string?> ScopeOption(string description) => new("--scope") { Description = description };

    private static Argument<string> AddressArgument() => new("address") { Description = "The recipient address." };

    private static Command List(TextWriter output)
    {
        var service = new ServiceOptions();
        var scope = ScopeOption("Only this scope: global or a sender domain. Default: every scope.");
        var limit = new Option<int>("--limit") { Description = "At most this many entries.", DefaultValueFactory = _ => 1000 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var command = new Command("list", "List suppressed addresses.") { scope, limit, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var wanted = parse.GetValue(scope) is { } text ? ParseScope(text) : null;
            await using var provider = service.Build(parse);
            var list = provider.GetRequiredService<SuppressionList>();
            var entries = new List<SuppressionEntity>();
            string? continuation = null;
            var max = Math.Max(1, parse.GetValue(limit));
            do
            {
                (var page, continuation) = await list.ListAsync(wanted, Math.Min(SuppressionHttpApi.MaxLimit, max - entries.Count), continuation, cancellationToken);
                entries.AddRange(page);
            }
            while (continuation is not null && entries.Count < max);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(entries.Select(SuppressionHttpApi.ToJson), IndentedJson));
                return 0;
            }
            foreach (var entry in entries)
            {
                await output.WriteLineAsync(Line(entry));
            }
            return 0;
        });
        return command;
    }

    private static Command Add(TextWriter output)
    {
        var service = new ServiceOptions();
        var address = AddressArgument();
        var scope = ScopeOption("global (default) or a sender domain.");
        var reason = new Option<string?>("--reason") { Description = "Why (kept with the entry)." };
        var expires = new Option<string?>("--expires") { Description = "When the entry stops suppressing: a date-time (ISO 8601) or a duration such as 30d, 12h, 90m. Default: never." };
        var json = new Option<bool>("--json") { Description = "Print the entry as JSON." };
        var command = new Command("add", "Suppress an address.") { address, scope, reason, expires, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var parsed = ParseAddress(parse.GetValue(address));
            var scoped = ParseScope(parse.GetValue(scope));
            await using var provider = service.Build(parse);
            var list = provider.GetRequiredService<SuppressionList>();
            var expiresAt = parse.GetValue(expires) is { } text ? ParseExpiry(text, list.Time.GetUtcNow()) : (DateTimeOffset?)null;
            await list.Table.CreateIfNotExistsAsync(cancellationToken);
            var entry = await list.AddAsync(parsed, scoped, parse.GetValue(reason) ?? "added with the CLI", "manual", "cli", null, expiresAt, cancellationToken);
            await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(SuppressionHttpApi.ToJson(entry), IndentedJson) : $"suppressed: {Line(entry)}");
            return 0;
        });
        return command;
    }

    private static Command Remove(TextWriter output)
    {
        var service = new ServiceOptions();
        var address = AddressArgument();
        var scope = ScopeOption("global (default) or a sender domain.");
        var json = new Option<bool>("--json") { Description = "Print {address, scope, removed}." };
        var command = new Command("remove", "Stop suppressing an address.") { address, scope, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var parsed = ParseAddress(parse.GetValue(address));
            var scoped = ParseScope(parse.GetValue(scope));
            await using var provider = service.Build(parse);
            var removed = await provider.GetRequiredService<SuppressionList>().RemoveAsync(parsed, scoped, cancellationToken);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(new { address = parsed.ToString(), scope = scoped.ToString(), removed }, IndentedJson));
                return removed ? 0 : 1;
            }
            if (!removed)
            {
                await output.WriteLineAsync($"clouddelivery suppressions remove: {parsed} is not suppressed in {scoped}");
                return 1;
            }
            await output.WriteLineAsync($"removed: {parsed} ({scoped})");
            return 0;
        });
        return command;
    }

    private static Command Show(TextWriter output)
    {
        var service = new ServiceOptions();
        var address = AddressArgument();
        var scope = ScopeOption("global (default) or a sender domain.");
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var command = new Command("show", "Show the entry of an address.") { address, scope, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var parsed = ParseAddress(parse.GetValue(address));
            var scoped = ParseScope(parse.GetValue(scope));
            await using var provider = service.Build(parse);
            var entry = await provider.GetRequiredService<SuppressionList>().FindAsync(parsed, scoped, cancellationToken);
            if (entry is null)
            {
                await output.WriteLineAsync($"clouddelivery suppressions show: {parsed} is not suppressed in {scoped}");
                return 1;
            }
            await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(SuppressionHttpApi.ToJson(entry), IndentedJson) : Line(entry));
            return 0;
        });
        return command;
    }

    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    private static string Line(SuppressionEntity entry) =>
        $"{entry.Address} [{entry.PartitionKey}] {entry.Category} via {entry.Source}{(entry.SourceMessageId.Length > 0 ? $" (message {entry.SourceMessageId})" : string.Empty)}, since {entry.CreatedAt:u}{(entry.ExpiresAt is { } at ? $", until {at:u}" : string.Empty)}: {entry.Reason}";

    /// <exception cref="FormatException">Not an address (the CLI answers it as a usage error).</exception>
    private static EmailAddress ParseAddress(string? text) =>
        SuppressionKeys.TryParseAddress(text, out var address, out var error) ? address : throw new FormatException($"'{text}' is not an address: {error}");

    private static string ParseScope(string? text) =>
        SuppressionKeys.TryParseScope(text, out var scope, out var error) ? scope : throw new FormatException(error);

    /// <summary>An absolute date-time, or a duration from now: a number and d, h or m.</summary>
    internal static DateTimeOffset ParseExpiry(string text, DateTimeOffset now)
    {
        var unit = text.Length > 1 ? text[^1] : ' ';
        if (unit is 'd' or 'h' or 'm' && int.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count > 0)
        {
            return now + (unit == 'd' ? TimeSpan.FromDays(count) : unit == 'h' ? TimeSpan.FromHours(count) : TimeSpan.FromMinutes(count));
        }
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) && at > now
            ? at
            : throw new FormatException($"--expires {text}: not a future date-time (ISO 8601) nor a duration such as 30d, 12h or 90m");
    }
}
