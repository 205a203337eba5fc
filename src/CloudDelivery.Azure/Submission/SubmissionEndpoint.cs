using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Azure.Submission;

/// <summary>An HTTP submission as any host receives it.</summary>
/// <param name="Query">Query parameters (a name may repeat).</param>
/// <param name="Headers">Request headers, names case-insensitive.</param>
/// <param name="ContentType">The media type of the body, without parameters.</param>
/// <param name="Body">The request body.</param>
public sealed record HttpSubmission(ILookup<string, string> Query, IReadOnlyDictionary<string, string> Headers, string? ContentType, Stream Body);

/// <summary>The answer: status code, a JSON body, and for 503 how many seconds to wait before retrying.</summary>
public sealed record HttpSubmissionResponse(int Status, string Json, int? RetryAfterSeconds = null);

/// <summary>
/// POST /api/messages, shared by the Functions HTTP trigger and <c>serve</c>. Two forms:
/// <list type="bullet">
/// <item>a raw RFC 5322 message as the body (message/rfc822, text/plain or application/octet-stream), the
/// envelope in the query (from, to — repeated or comma-separated —, requiretls, tlsrequiredno) or in the
/// headers X-Envelope-From / X-Envelope-To;</item>
/// <item>JSON: {"from": "...", "to": ["..."], "message": "base64", "requireTls": false, "tlsRequiredNo": false, "tags": {"key": "value"}},
/// for messages up to <see cref="OutboundQueueOptions.MaxJsonMessageBytes"/>.</item>
/// </list>
/// Answers 202 with the message id and an id per recipient. Client mistakes get a 4xx with an error code and
/// a readable message, storage trouble a 503 with Retry-After; nothing gets a 500.
/// </summary>
public sealed class SubmissionEndpoint(OutboundQueue queue)
{
    /// <summary>Submissions with an Idempotency-Key go through here (see README "Idempotent submission").</summary>
    public IdempotentSubmission Idempotency { get; } = new(queue);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>What a 503 asks the client to wait: long enough for SDK retries and a failover to pass.</summary>
    public const int RetryAfterSeconds = 5;

    public async Task<HttpSubmissionResponse> HandleAsync(HttpSubmission request, CancellationToken cancellationToken)
    {
        try
        {
            var submission = request.ContentType?.Equals("application/json", StringComparison.OrdinalIgnoreCase) == true
                ? await FromJsonAsync(request, cancellationToken)
                : request.ContentType is null or "message/rfc822" or "text/plain" or "application/octet-stream"
                    ? FromRaw(request)
                    : throw new BadRequestException(415, "unsupported-media-type", $"content type {request.ContentType} is not message/rfc822, text/plain, application/octet-stream or application/json");
            return IdempotencyKey.Of(request, submission.IdempotencyKey) is { } key
                ? await Idempotency.SubmitAsync(key, submission, cancellationToken)
                : Accepted(await queue.SubmitAsync(submission, cancellationToken));
        }
        catch (BadRequestException e)
        {
            return Error(e.Status, e.Code, e.Message);
        }
        catch (Exception e) when (Unwrap<SubmissionException>(e) is { } refused)
        {
            var status = refused.Error == SubmissionError.TooLarge ? 413 : 400;
            return Error(status, JsonNamingPolicy.KebabCaseLower.ConvertName(refused.Error.ToString()), refused.Message);
        }
        catch (Exception e) when (IsStorageTrouble(e, cancellationToken))
        {
            return StorageUnavailable();
        }
        catch (Exception e) when (Unwrap<IOException>(e) is not null && !cancellationToken.IsCancellationRequested)
        {
            // Reading the request failed: the client sent less than it announced, or broke off.
            return Error(400, "incomplete-body", "the request body ended early or could not be read");
        }
    }

    /// <summary>The 202 for a stored message: its id, size and an id per recipient.</summary>
    internal static HttpSubmissionResponse Accepted(SubmissionResult result) =>
        new(202, JsonSerializer.Serialize(new
        {
            messageId = result.MessageId,
            size = result.Size,
            recipients = result.Recipients.Select(r => new { recipient = r.Recipient, id = r.Id, status = r.Status, reason = r.Reason }),
        }, Json));

    /// <summary>The 503 for storage trouble: the client should retry after <see cref="RetryAfterSeconds"/>.</summary>
    public static HttpSubmissionResponse StorageUnavailable() =>
        new(503, JsonSerializer.Serialize(new { error = "storage-unavailable", message = "the queue's storage cannot be reached; try again" }, Json), RetryAfterSeconds);

    /// <summary>
    /// True for failures of the storage service rather than of the request: a storage error reply, a
    /// transport failure, an SDK timeout, or the AggregateException the SDK ends its retries with. The
    /// caller's own cancellation (the client went away) is not storage trouble.
    /// </summary>
    public static bool IsStorageTrouble(Exception e, CancellationToken cancellationToken) => e switch
    {
        RequestFailedException or HttpRequestException or TimeoutException or System.Net.Sockets.SocketException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        AggregateException aggregate => aggregate.Flatten().InnerExceptions.All(inner => IsStorageTrouble(inner, cancellationToken)),
        _ => false,
    };

    /// <summary><paramref name="e"/> or, through AggregateExceptions (how the SDK reports failed retries), an exception of type T inside it.</summary>
    private static T? Unwrap<T>(Exception e)
        where T : Exception => e switch
        {
            T match => match,
            AggregateException aggregate => aggregate.Flatten().InnerExceptions.Select(Unwrap<T>).FirstOrDefault(x => x is not null),
            _ => null,
        };

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

    /// <summary>
    /// The largest JSON body taken: the base64 of <see cref="OutboundQueueOptions.MaxJsonMessageBytes"/> (a
    /// third larger than the message) plus room for the envelope of the largest recipient list.
    /// </summary>
    public static long JsonBodyLimit(OutboundQueueOptions options) =>
        (Math.Min(options.MaxJsonMessageBytes, options.MaxMessageBytes) + 2) / 3 * 4 + 64 * 1024 + options.MaxRecipients * 512L;

    /// <summary>
    /// Reads the JSON body into one buffer, at most <see cref="JsonBodyLimit"/> bytes (a larger declared
    /// Content-Length is refused before reading anything), and decodes the base64 message in place in that
    /// buffer: memory is one copy of the body, never the string, token and byte copies a serializer makes.
    /// </summary>
    private async Task<SubmissionRequest> FromJsonAsync(HttpSubmission request, CancellationToken cancellationToken)
    {
        var limit = JsonBodyLimit(queue.Options);
        var cap = Math.Min(queue.Options.MaxJsonMessageBytes, queue.Options.MaxMessageBytes);
        var tooLarge = $"JSON body larger than {limit} bytes: the JSON form takes messages up to {cap} bytes; send larger ones raw (message/rfc822)";
        long? declared = request.Headers.TryGetValue("Content-Length", out var text) && long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : null;
        if (declared > limit)
        {
            throw new BadRequestException(413, "too-large", tooLarge);
        }
        var buffer = new byte[(int)Math.Max(1, declared ?? Math.Min(limit, 64 * 1024))];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length > limit)
                {
                    throw new BadRequestException(413, "too-large", tooLarge);
                }
                Array.Resize(ref buffer, (int)Math.Min(limit + 1, buffer.Length * 2L));
            }
            var read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0)
            {
                break;
            }
            length += read;
        }
        if (length > limit)
        {
            throw new BadRequestException(413, "too-large", tooLarge);
        }
        return ParseJson(buffer, length);
    }

    /// <summary>
    /// The JSON form's parser, over the first <paramref name="length"/> bytes of <paramref name="buffer"/>
    /// (whose base64 message it decodes in place). For any bytes it returns a request or throws
    /// <see cref="BadRequestException"/>, nothing else (the generated-input tests hold it to that).
    /// </summary>
    internal static SubmissionRequest ParseJson(byte[] buffer, int length) => JsonSubmission.Parse(buffer, length);

    private static bool Flag(string? value) => value is not null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase) || value.Equals("yes", StringComparison.OrdinalIgnoreCase));

    private static HttpSubmissionResponse Error(int status, string code, string message) =>
        new(status, JsonSerializer.Serialize(new { error = code, message }, Json));

    /// <summary>The JSON form, read with a reader over the body's bytes so that the message is never a string.</summary>
    private static class JsonSubmission
    {
        public static SubmissionRequest Parse(byte[] buffer, int length)
        {
            string? from = null;
            List<string>? to = null;
            var requireTls = false;
            var tlsRequiredNo = false;
            string? idempotencyKey = null;
            Dictionary<string, string>? tags = null;
            (int Start, int Length, bool Escaped)? message = null;
            try
            {
                var reader = new Utf8JsonReader(buffer.AsSpan(0, length), new JsonReaderOptions { MaxDepth = 8 });
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    throw Invalid("the body must be a JSON object with from, to and message");
                }
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var name = reader.GetString();
                    reader.Read();
                    switch (name)
                    {
                        case "from":
                            from = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw Invalid("from must be a string (\"\" for the null sender)");
                            break;
                        case "to":
                            to = Addresses(ref reader);
                            break;
                        case "message":
                            message = reader.TokenType == JsonTokenType.String
                                ? ((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length, reader.ValueIsEscaped)
                                : throw Invalid("message must be a string: the RFC 5322 message in base64");
                            break;
                        case "requireTls":
                            requireTls = Boolean(ref reader, name);
                            break;
                        case "tlsRequiredNo":
                            tlsRequiredNo = Boolean(ref reader, name);
                            break;
                        case "idempotencyKey":
                            idempotencyKey = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw Invalid("idempotencyKey must be a string");
                            break;
                        case "tags":
                            tags = Tags(ref reader);
                            break;
                        default:
                            reader.Skip();
                            break;
                    }
                }
                // Anything after the object (a second value, stray text) makes the body invalid.
                if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                {
                    throw Invalid("the body is not one JSON object");
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                throw Invalid($"the body is not valid JSON: {e.Message}");
            }
            if (from is null || to is null || message is not { } value)
            {
                throw Invalid("JSON needs from, to and message (base64)");
            }
            return new SubmissionRequest
            {
                Sender = from,
                Recipients = to,
                Message = Decode(buffer, value.Start, value.Length, value.Escaped),
                RequireTls = requireTls,
                TlsRequiredNo = tlsRequiredNo,
                IdempotencyKey = idempotencyKey,
                Tags = tags,
            };
        }

        /// <summary>The tags object: string values only, each key once, no more than ten; the queue checks keys and values (<see cref="MessageTags.Validate"/>).</summary>
        private static Dictionary<string, string>? Tags(ref Utf8JsonReader reader)
        {
            if (reader.TokenType == JsonTokenType.Null)
            {
                return null;
            }
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw InvalidTags("tags must be an object of strings: {\"key\": \"value\"}");
            }
            var tags = new Dictionary<string, string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var key = reader.GetString()!;
                reader.Read();
                if (reader.TokenType != JsonTokenType.String)
                {
                    throw InvalidTags($"tag \"{(key.Length > MessageTags.MaxKeyLength ? key[..MessageTags.MaxKeyLength] : key)}\": the value must be a string, not {reader.TokenType}");
                }
                if (!tags.TryAdd(key, reader.GetString()!))
                {
                    throw InvalidTags("a tag is given twice in tags");
                }
                if (tags.Count > MessageTags.MaxTags)
                {
                    throw InvalidTags($"more than {MessageTags.MaxTags} tags: at most {MessageTags.MaxTags} are taken");
                }
            }
            return tags;
        }

        private static BadRequestException InvalidTags(string message) => new(400, "invalid-tags", message);

        private static List<string> Addresses(ref Utf8JsonReader reader)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                throw Invalid("to must be an array of address strings");
            }
            var list = new List<string>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                list.Add(reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw Invalid($"to[{list.Count}] must be an address string, not {reader.TokenType}"));
            }
            return list;
        }

        private static bool Boolean(ref Utf8JsonReader reader, string name) => reader.TokenType switch
        {
            JsonTokenType.True => true,
            JsonTokenType.False or JsonTokenType.Null => false,
            _ => throw Invalid($"{name} must be true or false"),
        };

        /// <summary>
        /// Decodes the base64 value in place (base64 is longer than what it encodes), so the message shares
        /// the body's buffer. A value with JSON escapes (some encoders write "+" and "/" as \u002B, \/) is
        /// unescaped into a buffer of its own first.
        /// </summary>
        private static MemoryStream Decode(byte[] buffer, int start, int length, bool escaped)
        {
            var target = buffer;
            if (escaped)
            {
                var reader = new Utf8JsonReader(buffer.AsSpan(start - 1, length + 2));
                reader.Read();
                target = new byte[length];
                try
                {
                    length = reader.CopyString(target);
                }
                catch (InvalidOperationException)
                {
                    // An escape that makes no UTF-8 (a lone surrogate); found by the generated-input tests.
                    throw Invalid("message is not a valid JSON string");
                }
                start = 0;
            }
            var status = System.Buffers.Text.Base64.DecodeFromUtf8InPlace(target.AsSpan(start, length), out var written);
            if (status != System.Buffers.OperationStatus.Done)
            {
                throw new BadRequestException(400, "invalid-base64", "message is not valid base64");
            }
            return new MemoryStream(target, start, written, writable: false);
        }

        private static BadRequestException Invalid(string message) => new(400, "invalid-json", message);
    }

    /// <summary>A client mistake found before the queue sees the request: its status and error code.</summary>
    internal sealed class BadRequestException(int status, string code, string message) : Exception(message)
    {
        public int Status { get; } = status;

        public string Code { get; } = code;
    }
}
