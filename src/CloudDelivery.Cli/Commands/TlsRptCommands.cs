using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Azure.TlsRpt;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>clouddelivery tlsrpt show|send</c>: the aggregated TLSRPT results and the daily reports.</summary>
internal static class TlsRptCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create(TextWriter output)
    {
        var command = new Command("tlsrpt", "TLSRPT (RFC 8460): aggregated TLS results per day and the daily reports.");
        command.Subcommands.Add(Show(output));
        command.Subcommands.Add(Send(output));
        return command;
    }

    private static Option<string?> DateOption(string description) => new("--date") { Description = description };

    private static DateOnly ParseDate(string? text, DateOnly fallback) =>
        text is null ? fallback : DateOnly.ParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static Command Show(TextWriter output)
    {
        var service = new ServiceOptions();
        var date = DateOption("UTC day as yyyy-MM-dd (default: today).");
        var domain = new Option<string?>("--domain") { Description = "Only this recipient or policy domain." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var command = new Command("show", "Print the TLS results recorded for a day, per recipient domain and policy.") { date, domain, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                var day = ParseDate(parse.GetValue(date), DateOnly.FromDateTime(DateTime.UtcNow));
                await using var provider = service.Build(parse);
                await provider.GetRequiredService<OutboundStorage>().EnsureCreatedAsync(cancellationToken);
                var results = await provider.GetRequiredService<TlsRptResultStore>().ListAsync(day, cancellationToken);
                var only = parse.GetValue(domain)?.TrimEnd('.').ToLowerInvariant();
                var shown = results.Where(r => only is null || r.RecipientDomain == only || r.Result.Policy.Domain == only).ToList();
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(shown.Select(r => new { recipientDomain = r.RecipientDomain, host = r.IsHost, result = r.Result }), Indented));
                    return 0;
                }
                if (shown.Count == 0)
                {
                    await output.WriteLineAsync($"no TLS results for {day:yyyy-MM-dd}{(only is null ? string.Empty : $" and {only}")}");
                    return 0;
                }
                foreach (var group in shown.GroupBy(r => r.RecipientDomain))
                {
                    await output.WriteLineAsync(group.Key);
                    foreach (var entry in group)
                    {
                        var summary = entry.Result.Summary;
                        await output.WriteLineAsync($"  {entry.Result.Policy.Type} {entry.Result.Policy.Domain}: {summary.TotalSuccessfulSessionCount} successful, {summary.TotalFailureSessionCount} failed sessions");
                        foreach (var detail in entry.Result.FailureDetails)
                        {
                            var where = detail.ReceivingMxHostname.Length > 0 ? $" at {detail.ReceivingMxHostname}" : string.Empty;
                            var reason = detail.FailureReasonCode.Length > 0 ? $" ({detail.FailureReasonCode})" : string.Empty;
                            await output.WriteLineAsync($"    {detail.FailedSessionCount} × {detail.ResultType}{where}{reason}");
                        }
                    }
                }
                return 0;
            }
            catch (Exception e) when (e is FormatException or global::Azure.RequestFailedException)
            {
                await output.WriteLineAsync($"clouddelivery tlsrpt show: {e.Message}");
                return CliApplication.ExitUsage;
            }
        });
        return command;
    }

    private static Command Send(TextWriter output)
    {
        var service = new ServiceOptions();
        var date = DateOption("UTC day as yyyy-MM-dd (default: yesterday).");
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the report JSON that would be sent; send nothing." };
        var json = new Option<bool>("--json") { Description = "Print a JSON array: per report its id, policy domain, file name, why it was not sent, and each destination's result (with --dry-run: the report too)." };
        var command = new Command("send", "Send (or with --dry-run print) the reports of a day to the domains' _smtp._tls destinations.") { date, dryRun, json };
        service.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                var day = ParseDate(parse.GetValue(date), DateOnly.FromDateTime(DateTime.UtcNow).AddDays(-1));
                await using var provider = service.Build(parse);
                await provider.GetRequiredService<OutboundStorage>().EnsureCreatedAsync(cancellationToken);
                var outcomes = await provider.GetRequiredService<TlsRptReportSender>().SendDayAsync(day, parse.GetValue(dryRun), cancellationToken);
                var failed = outcomes.Any(o => o.Destinations.Any(d => d.Error is not null && !parse.GetValue(dryRun)));
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(
                        outcomes.Select(o => new
                        {
                            reportId = o.Report.ReportId,
                            policyDomain = o.Report.PolicyDomain,
                            fileName = o.Report.FileName,
                            skipped = o.Skipped,
                            destinations = o.Destinations.Select(d => new { destination = d.Destination.ToString(), error = d.Error }),
                            report = parse.GetValue(dryRun) ? JsonDocument.Parse(o.Report.ToJson()).RootElement : (JsonElement?)null,
                        }),
                        Indented));
                    return failed ? CliApplication.ExitTemporaryFailure : 0;
                }
                if (outcomes.Count == 0)
                {
                    await output.WriteLineAsync($"no TLS results for {day:yyyy-MM-dd}: no reports");
                }
                foreach (var outcome in outcomes)
                {
                    var report = outcome.Report;
                    await output.WriteLineAsync($"report {report.ReportId} for {report.PolicyDomain} ({report.FileName})");
                    if (outcome.Skipped is not null)
                    {
                        await output.WriteLineAsync($"  not sent: {outcome.Skipped}");
                    }
                    foreach (var destination in outcome.Destinations)
                    {
                        await output.WriteLineAsync($"  {destination.Destination}: {destination.Error ?? "sent"}");
                    }
                    if (parse.GetValue(dryRun))
                    {
                        await output.WriteLineAsync(Encoding.UTF8.GetString(report.ToJson()));
                    }
                }
                return outcomes.Any(o => o.Destinations.Any(d => d.Error is not null && !parse.GetValue(dryRun))) ? CliApplication.ExitTemporaryFailure : 0;
            }
            catch (Exception e) when (e is FormatException or global::Azure.RequestFailedException)
            {
                await output.WriteLineAsync($"clouddelivery tlsrpt send: {e.Message}");
                return CliApplication.ExitUsage;
            }
        });
        return command;
    }
}
