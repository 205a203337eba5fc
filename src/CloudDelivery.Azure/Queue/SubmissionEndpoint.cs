using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;

namespace CloudDelivery.Azure.Queue;

/// <summary>An HTTP submission as any host receives it.</summary>
/// <param name="Query">Query parameters (a name may repeat).</param>
/// <param name="Headers">Request headers, names case-insensitive.</param>
/// <param name="ContentType">The media type of the body, without parameters.</param>
/// <param name="Body">The request body.</param>
public sealed record HttpSubmission(ILookup<string, string> Query, IReadOnlyDictionary<string, string> Headers, string? ContentType, Stream Body);

/// <summary>The answer: status code and a JSON body.</summary>
public sealed record HttpSubmissionResponse(int Status, string Json);

/// <summary>
/// POST /api/messages, shared by the Functions HTTP trigger and <c>serve</c>. Two forms:
/// <list type="bullet">
/// <item>a raw RFC 5322 message as the body (message/rfc822, text/plain or application/octet-stream), the
/// envelope in the query (from, to — repeated or comma-separated —, requiretls, tlsrequiredno) or in the
/// headers X-Envelope-From / X-Envelope-To;</item>
/// <item>JSON: {"from": "...", "to": ["..."], "message": "base64", "requireTls": false, "tlsRequiredNo": false}.</item>
/// </list>
/// Answers 202 with the message id and an id per recipient; client mistakes get a 4xx with an error code
/// and a readable message, never a 500.
/// </summary>
public sealed class SubmissionEndpoint(OutboundQueue queue)
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public async Task<HttpSubmissionResponse> HandleAsync(HttpSubmission request, CancellationToken cancellationToken)
    {
        SubmissionRequest submission;
        try
        {
            submission = request.ContentType?.Equals("application/json", StringComparison.OrdinalIgnoreCase) == true
                ? await FromJsonAsync(request.Body, JsonLimit, cancellationToken)
                : request.ContentType is null or "message/rfc822" or "text/plain" or "application/octet-stream"
                    ? FromRaw(request)
                    : throw new BadRequestException(415, "unsupported-media-type", $"content type {request.ContentType} is not message/rfc822, text/plain, application/octet-stream or application/json");
        }
        catch (BadRequestException e)
        {
            return Error(e.Status, e.Code, e.Message);
        }

        try
        {
            var result = await queue.SubmitAsync(submission, cancellationToken);
            return new HttpSubmissionResponse(202, JsonSerializer.Serialize(new
            {
                messageId = result.MessageId,
                size = result.Size,
                recipients = result.Recipients.Select(r => new { recipient = r.Recipient, id = r.Id }),
            }, Json));
        }
        catch (SubmissionException e)
        {
            var status = e.Error == SubmissionError.TooLarge ? 413 : 400;
            return Error(status, JsonNamingPolicy.KebabCaseLower.ConvertName(e.Error.ToString()), e.Message);
        }
        catch (RequestFailedException)
        {
            // Storage trouble is ours, not the client's: 503 so the client retries.
            return Error(503, "storage-unavailable", "the message could not be stored; try again");
        }
    }

    private static SubmissionRequest FromRaw(HttpSubmission request)
    {
        var from = request.Query["from"].FirstOrDefault() ?? request.Headers.GetValueOrDefault("X-Envelope-From")
            ?? throw new BadRequestException(400, "missing-sender", "the envelope sender is missing: ?from=… or X-Envelope-From (use <> for the null sender)");
        var to = request.Query["to"].Concat(request.Headers.TryGetValue("X-Envelope-To", out var header) ? [header] : [])
            .SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToArray();
        return new SubmissionRequest
        {
            Sender = from,
            Recipients = to,
            Message = request.Body,
            RequireTls = Flag(request.Query["requiretls"].FirstOrDefault()),
            TlsRequiredNo = Flag(request.Query["tlsrequiredno"].FirstOrDefault()),
        };
    }

    /// <summary>A JSON body is parsed in memory; base64 makes it a third larger than the message.</summary>
    private long JsonLimit => queue.Options.MaxMessageBytes / 3 * 4 + 64 * 1024;

    private static async Task<SubmissionRequest> FromJsonAsync(Stream body, long limit, CancellationToken cancellationToken)
    {
        // Read at most the limit, so a huge body is refused rather than buffered.
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit)
            {
                throw new BadRequestException(413, "too-large", $"JSON body larger than {limit} bytes");
            }
        }
        buffer.Position = 0;
        JsonSubmission? parsed;
        try
        {
            parsed = await JsonSerializer.DeserializeAsync<JsonSubmission>(buffer, Json, cancellationToken);
        }
        catch (JsonException e)
        {
            throw new BadRequestException(400, "invalid-json", $"the body is not valid JSON: {e.Message}");
        }
        if (parsed?.From is null || parsed.To is null || parsed.Message is null)
        {
            throw new BadRequestException(400, "invalid-json", "JSON needs from, to and message (base64)");
        }
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(parsed.Message);
        }
        catch (FormatException)
        {
            throw new BadRequestException(400, "invalid-base64", "message is not valid base64");
        }
        return new SubmissionRequest
        {
            Sender = parsed.From,
            Recipients = parsed.To,
            Message = new MemoryStream(bytes),
            RequireTls = parsed.RequireTls,
            TlsRequiredNo = parsed.TlsRequiredNo,
        };
    }

    private static bool Flag(string? value) => value is not null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase) || value.Equals("yes", StringComparison.OrdinalIgnoreCase));

    private static HttpSubmissionResponse Error(int status, string code, string message) =>
        new(status, JsonSerializer.Serialize(new { error = code, message }, Json));

    private sealed record JsonSubmission(string? From, string[]? To, string? Message, bool RequireTls, bool TlsRequiredNo);

    private sealed class BadRequestException(int status, string code, string message) : Exception(message)
    {
        public int Status { get; } = status;

        public string Code { get; } = code;
    }
}
