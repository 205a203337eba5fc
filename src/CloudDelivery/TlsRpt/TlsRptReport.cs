using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using MimeKit;
using MimeKit.Utils;

namespace CloudDelivery.TlsRpt;

/// <summary>Who sends reports: the "organization-name", "contact-info" and submitter of RFC 8460 §4.4/§5.3.</summary>
public sealed record TlsRptReporter
{
    /// <summary>"organization-name" of every report.</summary>
    public required string OrganizationName { get; init; }

    /// <summary>"contact-info": an address or URI for questions about reports.</summary>
    public required string ContactInfo { get; init; }

    /// <summary>The domain in report ids, file names and the TLS-Report-Submitter header (RFC 8460 §5.3).</summary>
    public required string SubmitterDomain { get; init; }

    /// <summary>The From address of report mails.</summary>
    public string FromAddress => $"postmaster@{SubmitterDomain}";
}

/// <summary>"date-range" of a report (RFC 8460 §4.4).</summary>
public sealed record TlsRptDateRange(
    [property: JsonPropertyName("start-datetime")] string Start,
    [property: JsonPropertyName("end-datetime")] string End);

/// <summary>
/// One aggregate report (RFC 8460 §4) for one policy domain and one UTC day: the results of every policy
/// applied when delivering there, merged. Serialised exactly per the RFC's JSON field names; optional
/// fields without a value are left out rather than written empty.
/// </summary>
public sealed class TlsRptReport
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { OmitEmptyValues } },
    };

    [JsonPropertyName("organization-name")]
    public required string OrganizationName { get; init; }

    [JsonPropertyName("date-range")]
    public required TlsRptDateRange DateRange { get; init; }

    [JsonPropertyName("contact-info")]
    public required string ContactInfo { get; init; }

    [JsonPropertyName("report-id")]
    public required string ReportId { get; init; }

    [JsonPropertyName("policies")]
    public required IReadOnlyList<TlsRptResult> Policies { get; init; }

    /// <summary>The policy domain the report is about (not part of the JSON; it names the file and the mail).</summary>
    [JsonIgnore]
    public string PolicyDomain { get; private init; } = string.Empty;

    [JsonIgnore]
    public DateOnly Day { get; private init; }

    [JsonIgnore]
    public string SubmitterDomain { get; private init; } = string.Empty;

    /// <summary>The report of <paramref name="day"/> about <paramref name="policyDomain"/>, results with equal policies merged.</summary>
    public static TlsRptReport Create(TlsRptReporter reporter, string policyDomain, DateOnly day, IEnumerable<TlsRptResult> results)
    {
        var start = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        return new TlsRptReport
        {
            OrganizationName = reporter.OrganizationName,
            // The RFC's example ends a day at 23:59:59 (RFC 8460 Appendix B).
            DateRange = new TlsRptDateRange(Rfc3339(start), Rfc3339(start.AddDays(1).AddSeconds(-1))),
            ContactInfo = reporter.ContactInfo,
            // Unique per submitter, domain and day, and the same when a failed send is retried (RFC 8460 §4.4).
            ReportId = $"{day:yyyyMMdd}.{policyDomain}@{reporter.SubmitterDomain}",
            Policies = Merge(results),
            PolicyDomain = policyDomain,
            Day = day,
            SubmitterDomain = reporter.SubmitterDomain,
        };
    }

    /// <summary>Merges results with equal policies into copies (the inputs are not changed).</summary>
    public static List<TlsRptResult> Merge(IEnumerable<TlsRptResult> results)
    {
        var merged = new List<TlsRptResult>();
        foreach (var result in results)
        {
            var same = merged.Find(m => m.Policy.SameAs(result.Policy));
            if (same is null)
            {
                merged.Add(same = new TlsRptResult(result.Policy));
            }
            same.Merge(result);
        }
        return merged;
    }

    /// <summary>True when some session failed or some failure was noted.</summary>
    [JsonIgnore]
    public bool HasFailures => Policies.Any(p => p.Summary.TotalFailureSessionCount > 0 || p.FailureDetails.Count > 0);

    /// <summary>The report as UTF-8 JSON.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>The JSON, gzip-compressed, as sent (RFC 8460 §5.3 "application/tlsrpt+gzip").</summary>
    public byte[] ToGzip()
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(ToJson());
        }
        return output.ToArray();
    }

    /// <summary>
    /// The file name of RFC 8460 §5.3: submitter "!" policy-domain "!" begin "!" end ".json.gz", with the
    /// timestamps in seconds since the epoch.
    /// </summary>
    [JsonIgnore]
    public string FileName
    {
        get
        {
            var begin = new DateTimeOffset(Day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            var end = begin.AddDays(1).AddSeconds(-1);
            return string.Create(CultureInfo.InvariantCulture, $"{SubmitterDomain}!{PolicyDomain}!{begin.ToUnixTimeSeconds()}!{end.ToUnixTimeSeconds()}.json.gz");
        }
    }

    /// <summary>
    /// The report as a mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt" with a human-readable
    /// part and the gzip-compressed JSON, the TLS-Report-Domain and TLS-Report-Submitter headers, and
    /// "TLS-Required: No" (RFC 8689 §5: a report about TLS problems must not be stopped by them).
    /// </summary>
    public MimeMessage ToMessage(TlsRptReporter reporter, IEnumerable<string> recipients, DateTimeOffset now)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(reporter.FromAddress));
        foreach (var recipient in recipients)
        {
            message.To.Add(MailboxAddress.Parse(recipient));
        }
        message.Subject = $"Report Domain: {PolicyDomain} Submitter: {SubmitterDomain} Report-ID: <{ReportId}>";
        message.Date = now;
        message.MessageId = MimeUtils.GenerateMessageId(SubmitterDomain);
        message.Headers.Add("TLS-Report-Domain", PolicyDomain);
        message.Headers.Add("TLS-Report-Submitter", SubmitterDomain);
        message.Headers.Add("TLS-Required", "No");
        var body = new MultipartReport("tlsrpt")
        {
            new TextPart("plain")
            {
                Text = string.Create(CultureInfo.InvariantCulture, $"""
                    This is an SMTP TLS report (RFC 8460) about the attempts of {SubmitterDomain} to deliver
                    mail securely to {PolicyDomain} on {Day:yyyy-MM-dd} (UTC), sent because its _smtp._tls
                    TXT record names this address. The attached file holds the counts of successful and
                    failed TLS sessions and the details of the failures.

                    Report-ID: {ReportId}

                    """).ReplaceLineEndings("\r\n"),
            },
            new MimePart("application", "tlsrpt+gzip")
            {
                Content = new MimeContent(new MemoryStream(ToGzip())),
                ContentDisposition = new ContentDisposition(ContentDisposition.Attachment) { FileName = FileName },
                ContentTransferEncoding = ContentEncoding.Base64,
                FileName = FileName,
            },
        };
        message.Body = body;
        return message;
    }

    /// <summary><see cref="ToMessage"/> as bytes with CRLF line endings, ready to submit.</summary>
    public byte[] ToMessageBytes(TlsRptReporter reporter, IEnumerable<string> recipients, DateTimeOffset now)
    {
        using var output = new MemoryStream();
        ToMessage(reporter, recipients, now).WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, output);
        return output.ToArray();
    }

    private static string Rfc3339(DateTime utc) => utc.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    // RFC 8460 §4.4 marks most failure-details fields optional: an unknown sending IP or HELO is left out,
    // not sent as "".
    private static void OmitEmptyValues(JsonTypeInfo info)
    {
        foreach (var property in info.Properties)
        {
            property.ShouldSerialize = (_, value) => value switch
            {
                null => false,
                string text => text.Length > 0,
                System.Collections.IEnumerable items => items.GetEnumerator().MoveNext(),
                _ => true,
            };
        }
    }
}
