using System.CommandLine;
using System.Text.Json;
using CloudDelivery.Addressing;
using CloudDelivery.MtaSts;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>clouddelivery policy show|refresh DOMAIN</c>: the shared MTA-STS policy cache in Table Storage.</summary>
internal static class PolicyCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create(TextWriter output) => new("policy", "Inspect and refresh the MTA-STS policy cache the workers share.")
    {
        CreateShow(output),
        CreateRefresh(output),
    };

    private static Command CreateShow(TextWriter output)
    {
        var service = new ServiceOptions();
        var domainArgument = new Argument<string>("domain") { Description = "Recipient domain." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var command = new Command("show", "Show the cached policy of a domain: mode, MX patterns, max_age, when fetched, until when valid, last use, last error.") { domainArgument, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (!Domain.TryParse(parse.GetValue(domainArgument), out var domain, out var error))
            {
                await output.WriteLineAsync($"clouddelivery policy show: {error}");
                return CliApplication.ExitUsage;
            }
            await using var provider = service.Build(parse);
            var entry = await provider.GetRequiredService<IMtaStsPolicyStore>().GetAsync(domain, cancellationToken);
            if (entry is null)
            {
                await output.WriteLineAsync($"clouddelivery policy show: no cached MTA-STS policy for {domain.Ascii}");
                return 1;
            }
            var now = TimeProvider.System.GetUtcNow();
            var policy = entry.Policy;
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    domain = entry.Domain,
                    recordId = entry.RecordId,
                    mode = policy is null ? null : ModeName(policy.Mode),
                    mx = policy?.MxHostPatterns ?? [],
                    maxAge = policy is null ? (long?)null : (long)policy.MaxAge.TotalSeconds,
                    fetchedAt = entry.FetchedAt,
                    validUntil = entry.ValidUntil,
                    expired = entry.ValidUntil <= now,
                    lastUsed = entry.LastUsed,
                    lastError = entry.LastError,
                    backoff = entry.Backoff,
                    policy = policy?.Lines ?? [],
                }, Json));
                return 0;
            }
            await output.WriteLineAsync($"domain {entry.Domain} (record id {(entry.RecordId.Length == 0 ? "-" : entry.RecordId)})");
            if (policy is null)
            {
                await output.WriteLineAsync("  no policy: backing off after a failed fetch");
            }
            else
            {
                await output.WriteLineAsync($"  mode: {ModeName(policy.Mode)}");
                await output.WriteLineAsync($"  mx: {string.Join(", ", policy.MxHostPatterns)}");
                await output.WriteLineAsync($"  max_age: {(long)policy.MaxAge.TotalSeconds}");
            }
            await output.WriteLineAsync($"  fetched at: {entry.FetchedAt:u}");
            await output.WriteLineAsync($"  valid until: {entry.ValidUntil:u}{(entry.ValidUntil <= now ? " (expired)" : string.Empty)}");
            await output.WriteLineAsync($"  last used: {entry.LastUsed:u}");
            await output.WriteLineAsync($"  last error: {entry.LastError ?? "-"}");
            return 0;
        });
        return command;
    }

    private static Command CreateRefresh(TextWriter output)
    {
        var service = new ServiceOptions();
        var common = new CommonOptions();
        var domainArgument = new Argument<string>("domain") { Description = "Recipient domain." };
        var json = new Option<bool>("--json") { Description = "Print {domain, stored, mode, mx, maxAge} or {domain, stored: false, reasonCode, error}." };
        var command = new Command("refresh", "Fetch the policy of a domain now and store it in the cache; prints the policy or why the fetch failed.") { domainArgument, json };
        service.AddTo(command);
        common.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                if (!Domain.TryParse(parse.GetValue(domainArgument), out var domain, out var error))
                {
                    throw new UsageException(error);
                }
                // The cache the workers share; the fetch itself with this command's resolver and ports.
                await using var provider = service.Build(parse, common);
                var engine = common.Engine(provider, parse);
                var result = await engine.MtaSts.RefreshAsync(domain, cancellationToken);
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(result.Policy is { } fetched
                        ? JsonSerializer.Serialize(new { domain = domain.Ascii, stored = true, mode = ModeName(fetched.Mode), mx = fetched.MxHostPatterns, maxAge = (long)fetched.MaxAge.TotalSeconds }, Json)
                        : JsonSerializer.Serialize(new { domain = domain.Ascii, stored = false, reasonCode = result.FailureReasonCode?.ToString(), error = result.Error }, Json));
                    return result.Policy is null ? 1 : 0;
                }
                if (result.Policy is not { } policy)
                {
                    // A cached policy stays in force until it expires (RFC 8461 §5.1); the failure is its LastError.
                    await output.WriteLineAsync($"clouddelivery policy refresh: {domain.Ascii}: {result.FailureReasonCode}: {result.Error}");
                    return 1;
                }
                await output.WriteLineAsync($"{domain.Ascii}: mode {ModeName(policy.Mode)}, mx {string.Join(", ", policy.MxHostPatterns)}, max_age {(long)policy.MaxAge.TotalSeconds}; stored");
                return 0;
            }
            catch (UsageException e)
            {
                await output.WriteLineAsync($"clouddelivery policy refresh: {e.Message}");
                return CliApplication.ExitUsage;
            }
        });
        return command;
    }

    private static string ModeName(MtaStsMode mode) => mode switch
    {
        MtaStsMode.Enforce => "enforce",
        MtaStsMode.Testing => "testing",
        _ => "none",
    };
}
