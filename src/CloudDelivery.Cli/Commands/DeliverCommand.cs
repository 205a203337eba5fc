using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Messages;
using CloudDelivery.Smtp;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>clouddelivery deliver</c>: one direct delivery attempt now, without storage. Recipients are grouped
/// by domain and each domain is delivered to in parallel, as the queue will do.
/// </summary>
internal static class DeliverCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var common = new CommonOptions();
        var from = new Option<string>("--from") { Description = "Envelope sender (MAIL FROM); \"<>\" for the null sender.", Required = true };
        var to = new Option<string[]>("--to") { Description = "Recipient (RCPT TO); repeat for more.", Required = true };
        var messageFile = new Option<FileInfo?>("--message") { Description = "File with the RFC 5322 message, sent byte for byte (bare LF line endings become CRLF). Without it a test message is composed from --subject, --header and --body." };
        var subject = new Option<string?>("--subject") { Description = $"Subject of the composed test message (default \"{TestMessageComposer.DefaultSubject}\")." };
        var header = new Option<string[]>("--header") { Description = "An extra header field of the composed message, \"Name: value\"; repeat for more." };
        var body = new Option<string?>("--body") { Description = "Plain-text body of the composed message." };
        var requireTls = new Option<bool>("--require-tls") { Description = "REQUIRETLS (RFC 8689): deliver only with DANE or enforced MTA-STS to servers supporting REQUIRETLS." };
        var tlsRequiredNo = new Option<bool>("--tls-required-no") { Description = "As with a \"TLS-Required: No\" header: ignore MTA-STS, DANE and certificate failures." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (stable shape, for scripts)." };
        var command = new Command("deliver", "Deliver a message directly to the recipients' MX hosts now, without storage; exit 0 delivered, 75 temporary failure, 69 permanent failure.")
        {
            from, to, messageFile, subject, header, body, requireTls, tlsRequiredNo, json,
        };
        common.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                await using var services = common.BuildServices(parse);
                var engine = common.Engine(services, parse);
                if (parse.GetValue(requireTls) && parse.GetValue(tlsRequiredNo))
                {
                    throw new UsageException("--require-tls and --tls-required-no exclude each other");
                }
                var composed = new ComposedMessage(parse.GetValue(subject), parse.GetValue(header) ?? [], parse.GetValue(body), parse.GetValue(common.Ehlo)!);
                var request = BuildMessage(parse.GetValue(from)!, parse.GetValue(to)!, parse.GetValue(messageFile), composed, parse.GetValue(requireTls), parse.GetValue(tlsRequiredNo));
                var outcomes = await Task.WhenAll(request.ByDomain.Select(group => engine.DeliverAsync(
                    new DeliveryRequest
                    {
                        Destination = group.Key,
                        Messages = [new OutboundMessage
                        {
                            Id = "cli",
                            Sender = request.Sender,
                            Recipients = group.ToArray(),
                            Body = request.Body,
                            Has8BitContent = request.Properties.Has8BitContent,
                            NeedsSmtpUtf8 = request.Properties.HeadersNeedSmtpUtf8,
                            TlsRequirement = request.Requirement,
                        }],
                    },
                    cancellationToken)));
                var report = DeliveryReport.From(outcomes);
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(report, DeliveryReport.JsonOptions));
                }
                else
                {
                    await report.WriteTextAsync(output);
                }
                return report.ExitCode;
            }
            catch (UsageException e)
            {
                await error.WriteLineAsync($"clouddelivery deliver: {e.Message}");
                return CliApplication.ExitUsage;
            }
        });
        return command;
    }

    /// <summary>The flags a test message is composed from when no file is given.</summary>
    private sealed record ComposedMessage(string? Subject, IReadOnlyList<string> Headers, string? Body, string Hostname);

    private static ParsedDelivery BuildMessage(string from, string[] to, FileInfo? file, ComposedMessage composed, bool requireTls, bool tlsRequiredNo)
    {
        EmailAddress? sender = null;
        if (from is not ("<>" or ""))
        {
            if (!EmailAddress.TryParse(from, out sender, out var error))
            {
                throw new UsageException($"--from {from}: {error}");
            }
        }
        var recipients = new List<EmailAddress>();
        foreach (var text in to)
        {
            if (!EmailAddress.TryParse(text, out var recipient, out var error))
            {
                throw new UsageException($"--to {text}: {error}");
            }
            recipients.Add(recipient);
        }
        var compose = TestMessageComposer.Requested(composed.Subject, composed.Headers, composed.Body);
        if (file is not null && compose)
        {
            throw new UsageException("--message sends a file as it is; --subject, --header and --body compose a message instead: give one or the other");
        }
        var bytes = file is null
            ? TestMessageComposer.Compose(sender, recipients, composed.Subject, composed.Headers, composed.Body, composed.Hostname)
            : ReadMessageFile(file);
        return Parsed(sender, recipients, bytes, requireTls, tlsRequiredNo);
    }

    private static byte[] ReadMessageFile(FileInfo file)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file.FullName);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--message {file}: {e.Message}");
        }
        if (bytes.Length == 0)
        {
            throw new UsageException($"--message {file}: the file is empty");
        }
        return bytes;
    }

    private static ParsedDelivery Parsed(EmailAddress? sender, List<EmailAddress> recipients, byte[] bytes, bool requireTls, bool tlsRequiredNo)
    {
        var properties = MessageInspection.Inspect(bytes);
        if (properties.HasBareLineFeeds)
        {
            bytes = MessageInspection.NormalizeLineEndings(bytes);
        }
        var requirement = requireTls ? TlsRequirement.RequireTls
            : tlsRequiredNo || properties.TlsRequiredNoHeader ? TlsRequirement.TlsRequiredNo
            : TlsRequirement.Default;
        return new ParsedDelivery(sender, recipients, MessageBody.FromBytes(bytes), properties, requirement);
    }

    private sealed record ParsedDelivery(EmailAddress? Sender, IReadOnlyList<EmailAddress> Recipients, MessageBody Body, MessageProperties Properties, TlsRequirement Requirement)
    {
        public IEnumerable<IGrouping<NextHop, EmailAddress>> ByDomain => Recipients.GroupBy(r => r.Domain);
    }
}

/// <summary>The output of <c>deliver</c>; its JSON form is a stable interface for scripts and monitoring.</summary>
internal sealed class DeliveryReport
{
    public static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    [JsonPropertyName("recipients")]
    public required IReadOnlyList<RecipientLine> Recipients { get; init; }

    [JsonPropertyName("connections")]
    public required IReadOnlyList<ConnectionLine> Connections { get; init; }

    /// <summary>TLSRPT results in RFC 8460 §4.4 vocabulary: one per policy (recipient domain, then hosts).</summary>
    [JsonPropertyName("tlsrpt")]
    public required IReadOnlyList<TlsRptResult> TlsRpt { get; init; }

    [JsonIgnore]
    public int ExitCode =>
        Recipients.Any(r => r.Status == "temporary") ? CliApplication.ExitTemporaryFailure
        : Recipients.Any(r => r.Status == "permanent") ? CliApplication.ExitPermanentFailure
        : CliApplication.ExitDelivered;

    public static DeliveryReport From(IEnumerable<DeliveryOutcome> outcomes)
    {
        var list = outcomes.ToList();
        return new DeliveryReport
        {
            Recipients = list.SelectMany(o => o.Recipients).Select(RecipientLine.From).ToArray(),
            Connections = list.SelectMany(o => o.Connections).Select(ConnectionLine.From).ToArray(),
            TlsRpt = list.SelectMany(o => (o.RecipientDomainResult is null ? [] : new[] { o.RecipientDomainResult }).Concat(o.HostResults)).ToArray(),
        };
    }

    public async Task WriteTextAsync(TextWriter output)
    {
        foreach (var r in Recipients)
        {
            await output.WriteLineAsync($"{r.Recipient}: {r.Status} via {r.Host ?? "-"} [{r.Ip ?? "-"}]: {r.Code} {r.EnhancedCode} {r.Text}".Replace("  ", " ", StringComparison.Ordinal));
        }
        foreach (var c in Connections)
        {
            var tls = c.TlsVersion is null ? "no TLS" : $"{c.TlsVersion}, certificate {c.CertificateVerification}";
            await output.WriteLineAsync($"connection {c.Host} [{c.Ip}]: {tls}{(c.PlaintextRetry ? " (plaintext retry)" : string.Empty)}{(c.Error is null ? string.Empty : $": {c.Error}")}");
        }
        foreach (var result in TlsRpt)
        {
            var failures = string.Join(", ", result.FailureDetails.Select(f => f.FailureReasonCode.Length > 0 ? $"{f.ResultType} ({f.FailureReasonCode})" : f.ResultType));
            await output.WriteLineAsync($"tlsrpt {result.Policy.Type} {result.Policy.Domain}: {result.Summary.TotalSuccessfulSessionCount} ok, {result.Summary.TotalFailureSessionCount} failed{(failures.Length > 0 ? $"; {failures}" : string.Empty)}");
        }
    }

    internal sealed record RecipientLine(
        [property: JsonPropertyName("recipient")] string Recipient,
        [property: JsonPropertyName("status")] string Status,
        [property: JsonPropertyName("host")] string? Host,
        [property: JsonPropertyName("ip")] string? Ip,
        [property: JsonPropertyName("code")] int Code,
        [property: JsonPropertyName("enhancedCode")] string? EnhancedCode,
        [property: JsonPropertyName("text")] string Text)
    {
        public static RecipientLine From(RecipientResult r) => new(
            r.Recipient.ToString(),
            r.Status.ToString().ToLowerInvariant(),
            r.Host,
            r.Address?.ToString(),
            r.Reply.Code,
            r.Reply.EnhancedCode,
            r.Reply.Text);
    }

    internal sealed record ConnectionLine(
        [property: JsonPropertyName("host")] string Host,
        [property: JsonPropertyName("ip")] string Ip,
        [property: JsonPropertyName("tlsVersion")] string? TlsVersion,
        [property: JsonPropertyName("certificateVerification")] string CertificateVerification,
        [property: JsonPropertyName("certificateSubject")] string? CertificateSubject,
        [property: JsonPropertyName("plaintextRetry")] bool PlaintextRetry,
        [property: JsonPropertyName("error")] string? Error)
    {
        public static ConnectionLine From(ConnectionReport c) => new(
            c.Host,
            c.Address.ToString(),
            c.TlsVersion,
            VerificationName(c.Verification),
            c.CertificateSubject,
            c.PlaintextRetry,
            c.Error);
    }

    /// <summary>The names the JSON uses: none, unverified, pkix, dane-ee, dane-ta.</summary>
    public static string VerificationName(CertificateVerification verification) => verification switch
    {
        CertificateVerification.DaneEe => "dane-ee",
        CertificateVerification.DaneTa => "dane-ta",
        _ => verification.ToString().ToLowerInvariant(),
    };
}
