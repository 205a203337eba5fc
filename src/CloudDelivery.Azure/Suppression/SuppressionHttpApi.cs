using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using CloudDelivery.Addressing;
using CloudDelivery.Azure.Submission;
using Microsoft.AspNetCore.Http;

namespace CloudDelivery.Azure.Suppression;

/// <summary>
/// /api/suppressions on ASP.NET Core, the one handler of both hosts (<c>serve</c> maps it, the Functions
/// app's HTTP triggers call it):
/// <list type="bullet">
/// <item>GET /api/suppressions?scope=&amp;limit=&amp;continuation= — one page of entries (all scopes when scope is omitted);</item>
/// <item>GET /api/suppressions/{address}?scope= — one entry, 404 when absent;</item>
/// <item>PUT /api/suppressions/{address} or POST /api/suppressions with {address, scope, reason, expiresAt} — 201 added, 200 replaced;</item>
/// <item>DELETE /api/suppressions/{address}?scope= — 204 removed, 404 when absent.</item>
/// </list>
/// The scope of one entry is "global" when omitted. Malformed input gets a 400 with an error code, storage
/// trouble a 503 with Retry-After; nothing gets a 500.
/// </summary>
public static class SuppressionHttpApi
{
    /// <summary>The largest request body taken: an address, a scope, a reason and a date fit in far less.</summary>
    public const int MaxBodyBytes = 16 * 1024;

    public const int DefaultLimit = 100;

    /// <summary>Table queries return at most 1000 entities a page.</summary>
    public const int MaxLimit = 1000;

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static Task<IResult> ListAsync(HttpRequest request, SuppressionList list, CancellationToken cancellationToken) => GuardAsync(async () =>
    {
        var scope = request.Query.ContainsKey("scope") ? Scope(request.Query["scope"]) : null;
        var limit = DefaultLimit;
        if (request.Query["limit"].FirstOrDefault() is { } text && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
        {
            throw new SuppressionRequestException("invalid-limit", $"limit must be a whole number from 1 to {MaxLimit}");
        }
        var continuation = request.Query["continuation"].FirstOrDefault();
        if (continuation is { Length: > 2048 } || continuation?.Any(char.IsControl) == true)
        {
            throw new SuppressionRequestException("invalid-continuation", "continuation is not a token this API returned");
        }
        try
        {
            var (entries, next) = await list.ListAsync(scope, limit, string.IsNullOrEmpty(continuation) ? null : continuation, cancellationToken);
            return Answer(200, new { entries = entries.Select(ToJson), continuation = next });
        }
        catch (RequestFailedException e) when (e.Status == 400 && continuation is not null)
        {
            throw new SuppressionRequestException("invalid-continuation", "continuation is not a token this API returned");
        }
        catch (Exception e) when (e is FormatException or ArgumentException && continuation is not null)
        {
            throw new SuppressionRequestException("invalid-continuation", "continuation is not a token this API returned");
        }
    }, cancellationToken);

    public static Task<IResult> LookupAsync(HttpRequest request, string? address, SuppressionList list, CancellationToken cancellationToken) => GuardAsync(async () =>
    {
        var entry = await list.FindAsync(Address(address), Scope(request.Query["scope"]), cancellationToken);
        return entry is null ? NotFound() : Answer(200, ToJson(entry));
    }, cancellationToken);

    /// <summary>PUT with the address in the path (<paramref name="address"/>), or POST with it in the body (null).</summary>
    public static Task<IResult> AddAsync(HttpRequest request, string? address, SuppressionList list, CancellationToken cancellationToken) => GuardAsync(async () =>
    {
        var body = await ReadBodyAsync(request, cancellationToken);
        var parsed = Address(address ?? body.Address ?? throw new SuppressionRequestException("invalid-address", "the body needs an address"));
        if (address is not null && body.Address is not null && !SuppressionKeys.TryParseAddress(body.Address, out _, out _))
        {
            throw new SuppressionRequestException("invalid-address", "the body's address is not an address");
        }
        var scope = Scope(body.Scope ?? request.Query["scope"].FirstOrDefault());
        if (body.ExpiresAt is { } expires && expires <= list.Time.GetUtcNow())
        {
            throw new SuppressionRequestException("invalid-expires-at", "expiresAt is in the past");
        }
        var existed = await list.FindAsync(parsed, scope, cancellationToken) is not null;
        var entry = await list.AddAsync(parsed, scope, body.Reason ?? "added over the API", "manual", "api", null, body.ExpiresAt, cancellationToken);
        return Answer(existed ? 200 : 201, ToJson(entry));
    }, cancellationToken);

    public static Task<IResult> RemoveAsync(HttpRequest request, string? address, SuppressionList list, CancellationToken cancellationToken) => GuardAsync(async () =>
        await list.RemoveAsync(Address(address), Scope(request.Query["scope"]), cancellationToken) ? new NoContentResult() : NotFound(), cancellationToken);

    /// <summary>An entry as the API and the CLI's --json print it.</summary>
    public static object ToJson(SuppressionEntity entry) => new
    {
        address = entry.Address,
        scope = entry.PartitionKey,
        reason = entry.Reason,
        category = entry.Category,
        source = entry.Source,
        sourceMessageId = entry.SourceMessageId.Length == 0 ? null : entry.SourceMessageId,
        createdAt = entry.CreatedAt,
        expiresAt = entry.ExpiresAt,
    };

    /// <summary>The JSON of <paramref name="value"/> with the API's naming.</summary>
    public static string Serialize(object value) => JsonSerializer.Serialize(value, Json);

    private static async Task<IResult> GuardAsync(Func<Task<IResult>> handle, CancellationToken cancellationToken)
    {
        try
        {
            return await handle();
        }
        catch (SuppressionRequestException e)
        {
            return Answer(e.Status, new { error = e.Code, message = e.Message });
        }
        catch (Exception e) when (SubmissionEndpoint.IsStorageTrouble(e, cancellationToken))
        {
            return SubmissionHttpApi.ToResult(SubmissionEndpoint.StorageUnavailable());
        }
        catch (Exception e) when (e is IOException or BadHttpRequestException && !cancellationToken.IsCancellationRequested)
        {
            return Answer(400, new { error = "incomplete-body", message = "the request body ended early or could not be read" });
        }
    }

    /// <summary>
    /// The address of a path segment. ASP.NET Core decodes a path's escapes except "%2F" (a '/' would split
    /// the path), which is decoded here.
    /// </summary>
    private static EmailAddress Address(string? text)
    {
        var decoded = text?.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        return SuppressionKeys.TryParseAddress(decoded, out var address, out var error)
            ? address
            : throw new SuppressionRequestException("invalid-address", $"'{decoded}' is not an address: {error}");
    }

    private static string Scope(string? text) =>
        SuppressionKeys.TryParseScope(text, out var scope, out var error) ? scope : throw new SuppressionRequestException("invalid-scope", error);

    private static JsonApiResult Answer(int status, object body) => new(status, Serialize(body));

    private static JsonApiResult NotFound() => Answer(404, new { error = "not-found", message = "no such suppression entry" });

    private sealed record AddBody(string? Address, string? Scope, string? Reason, DateTimeOffset? ExpiresAt);

    /// <summary>The JSON body of an addition, at most <see cref="MaxBodyBytes"/>; an empty body is an empty object.</summary>
    private static async Task<AddBody> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            throw new SuppressionRequestException("too-large", $"the body is larger than {MaxBodyBytes} bytes", 413);
        }
        var buffer = new byte[MaxBodyBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
        {
            length += read;
        }
        if (length > MaxBodyBytes)
        {
            throw new SuppressionRequestException("too-large", $"the body is larger than {MaxBodyBytes} bytes", 413);
        }
        if (length == 0)
        {
            return new AddBody(null, null, null, null);
        }
        try
        {
            using var document = JsonDocument.Parse(buffer.AsMemory(0, length), new JsonDocumentOptions { MaxDepth = 4 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new SuppressionRequestException("invalid-json", "the body must be a JSON object");
            }
            return new AddBody(
                Text(document.RootElement, "address"),
                Text(document.RootElement, "scope"),
                Text(document.RootElement, "reason"),
                Text(document.RootElement, "expiresAt") is { } expires
                    ? DateTimeOffset.TryParse(expires, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : throw new SuppressionRequestException("invalid-expires-at", "expiresAt is not a date-time (ISO 8601)")
                    : null);
        }
        catch (JsonException e)
        {
            throw new SuppressionRequestException("invalid-json", $"the body is not valid JSON: {e.Message}");
        }
    }

    private static string? Text(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new SuppressionRequestException("invalid-json", $"{name} must be a string");

    /// <summary>A client mistake: its status (400 unless said) and error code.</summary>
    private sealed class SuppressionRequestException(string code, string message, int status = 400) : Exception(message)
    {
        public string Code { get; } = code;

        public int Status { get; } = status;
    }

    /// <summary>204 without a body (RFC 9110 §15.3.5).</summary>
    private sealed class NoContentResult : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = StatusCodes.Status204NoContent;
            return Task.CompletedTask;
        }
    }
}
