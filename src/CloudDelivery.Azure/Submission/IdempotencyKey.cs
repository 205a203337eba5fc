namespace CloudDelivery.Azure.Submission;

/// <summary>
/// The idempotency key of a submission: the Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header,
/// a Structured Field string, RFC 8941 §3.3.3; a bare token is taken as is) or the JSON form's
/// idempotencyKey field. A key is 1–255 printable ASCII characters.
/// </summary>
internal static class IdempotencyKey
{
    public const string HeaderName = "Idempotency-Key";

    public const int MaxLength = 255;

    /// <summary>The request's key, or null without one.</summary>
    /// <exception cref="SubmissionEndpoint.BadRequestException">The key is malformed, or header and field differ (400).</exception>
    public static string? Of(HttpSubmission request, string? jsonField)
    {
        var header = request.Headers.TryGetValue(HeaderName, out var value) ? FromHeader(value) : null;
        if (jsonField is not null)
        {
            Check(jsonField, "the idempotencyKey field");
        }
        if (header is not null && jsonField is not null && !string.Equals(header, jsonField, StringComparison.Ordinal))
        {
            throw new SubmissionEndpoint.BadRequestException(400, "conflicting-idempotency-keys", "the Idempotency-Key header and the idempotencyKey field differ; send one, or the same in both");
        }
        return header ?? jsonField;
    }

    private static string FromHeader(string value)
    {
        var text = value.Trim(' ', '\t');
        if (text.Length >= 2 && text[0] == '"')
        {
            text = Unquote(text) ?? throw Invalid("the Idempotency-Key header is not a valid quoted string (RFC 8941 §3.3.3)");
        }
        return Check(text, "the Idempotency-Key header");
    }

    /// <summary>An RFC 8941 sf-string: DQUOTE, printable ASCII with \" and \\ escaped, DQUOTE, nothing after.</summary>
    private static string? Unquote(string text)
    {
        var builder = new System.Text.StringBuilder(text.Length);
        for (var i = 1; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '"')
            {
                return i == text.Length - 1 ? builder.ToString() : null;
            }
            if (c == '\\')
            {
                if (++i == text.Length || text[i] is not ('"' or '\\'))
                {
                    return null;
                }
                c = text[i];
            }
            builder.Append(c);
        }
        return null;
    }

    private static string Check(string key, string where) =>
        key.Length is 0 or > MaxLength
            ? throw Invalid($"{where} must be 1 to {MaxLength} characters long")
            : key.Any(c => c is < ' ' or > '~')
                ? throw Invalid($"{where} may hold printable ASCII characters only")
                : key;

    private static SubmissionEndpoint.BadRequestException Invalid(string message) => new(400, "invalid-idempotency-key", message);
}
