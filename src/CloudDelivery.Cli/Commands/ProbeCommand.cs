using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>clouddelivery probe DOMAIN</c>: how delivery to a domain would go, without sending a message, and
/// whether the configured resolver validates DNSSEC (the resolver self-check, see <see cref="ResolverSelfCheck"/>).
/// </summary>
internal static class ProbeCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public static Command Create(TextWriter output)
    {
        var common = new CommonOptions();
        var domainArgument = new Argument<string>("domain") { Description = "Recipient domain to look at." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("probe", "Show MX hosts, MTA-STS policy, TLSA records, EHLO capabilities and TLS of a recipient domain. Sends no message.")
        {
            domainArgument, json,
        };
        common.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                await using var services = common.BuildServices(parse);
                var engine = common.Engine(services, parse);
                if (!Domain.TryParse(parse.GetValue(domainArgument), out var domain, out var error))
                {
                    throw new UsageException(error);
                }
                // The resolver self-check alongside the probe: whether "DNSSEC authentic" can ever be said
                // below depends on it. Asked on request, even where the service's periodic check is off.
                var checkOptions = services.GetRequiredService<IOptions<DeliveryOptions>>().Value.ResolverCheck;
                var resolverTask = new ResolverSelfCheck(engine.Resolver, checkOptions, metrics: engine.Metrics).CheckAsync(cancellationToken);
                var probe = await new DestinationProbe(engine).ProbeAsync(domain, cancellationToken);
                var resolver = await resolverTask;
                if (parse.GetValue(json))
                {
                    var node = JsonSerializer.SerializeToNode(probe, JsonOptions)!.AsObject();
                    node["resolver"] = new JsonObject
                    {
                        ["result"] = resolver.State.Name(),
                        ["resolver"] = resolver.Resolver,
                        ["detail"] = resolver.Detail,
                    };
                    await output.WriteLineAsync(node.ToJsonString(JsonOptions));
                }
                else
                {
                    await output.WriteLineAsync(resolver.ToString());
                    await WriteTextAsync(output, probe);
                }
                return probe.DestinationError is null ? 0 : CliApplication.ExitTemporaryFailure;
            }
            catch (UsageException e)
            {
                await output.WriteLineAsync($"clouddelivery probe: {e.Message}");
                return CliApplication.ExitUsage;
            }
        });
        return command;
    }

    private static async Task WriteTextAsync(TextWriter output, DomainProbe probe)
    {
        await output.WriteLineAsync($"domain {probe.Domain}{(probe.ExpandedDomain is { } e && e != probe.Domain ? $" (CNAME to {e})" : string.Empty)}");
        await output.WriteLineAsync(probe.MxLookupFailed
            ? "  MX: lookup failed"
            : $"  MX: {(probe.HaveMx ? "yes" : "no (implicit MX)")}, DNSSEC {(probe.MxAuthentic ? "authentic" : "not authentic")}");
        if (probe.DestinationError is not null)
        {
            await output.WriteLineAsync($"  error: {probe.DestinationError}");
        }
        await output.WriteLineAsync(probe.MtaStsMode is null ? $"  MTA-STS: none ({probe.MtaStsNote})" : $"  MTA-STS: mode {probe.MtaStsMode}");
        foreach (var line in probe.MtaStsPolicy)
        {
            await output.WriteLineAsync($"    {line}");
        }
        foreach (var host in probe.Hosts)
        {
            await output.WriteLineAsync($"  host {host.Host} (preference {host.Preference}) addresses {string.Join(", ", host.Addresses)} DNSSEC {(host.AddressesAuthentic ? "authentic" : "not authentic")}");
            if (host.MatchesMtaStsPolicy is { } matches)
            {
                await output.WriteLineAsync($"    MTA-STS policy {(matches ? "matches" : "DOES NOT match")}");
            }
            await output.WriteLineAsync(host.TlsaRecords.Count > 0
                ? $"    TLSA: {string.Join("; ", host.TlsaRecords)}"
                : $"    TLSA: {(host.TlsaError ?? (host.TlsaAuthentic ? "none" : "not looked up (not DNSSEC-authentic)"))}");
            if (host.ConnectedAddress is not null)
            {
                await output.WriteLineAsync($"    connected to {host.ConnectedAddress}, greeting {host.Greeting}");
                await output.WriteLineAsync($"    EHLO: {string.Join(", ", host.EhloKeywords)}");
                await output.WriteLineAsync(host.StartTls
                    ? $"    TLS {host.TlsVersion}, certificate {host.CertificateSubject}, verification {DeliveryReport.VerificationName(host.Verification)}{(host.PkixError is null ? string.Empty : $" (WebPKI: {host.PkixError})")}"
                    : "    no TLS");
            }
            if (host.DomainTls is { } supports)
            {
                // The words of GET /api/domains/{domain} and status --domain: what delivery would record.
                await output.WriteLineAsync($"    supports: {supports.Describe()}");
            }
            if (host.OperatorPolicy is not null)
            {
                await output.WriteLineAsync($"    operator TLS policy: {host.OperatorPolicy}");
            }
            if (host.Verdict != TlsVerdict.Unknown)
            {
                // As posttls-finger: one word for what delivery would make of the host, then why.
                await output.WriteLineAsync($"    verdict: {host.Verdict}: {host.VerdictDetail}");
            }
            if (host.Error is not null)
            {
                await output.WriteLineAsync($"    error: {host.Error}");
            }
        }
    }
}
