using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Azure.Submission;

/// <summary>
/// The application's key=value tags of a message: from the <c>X-CloudDelivery-Tags</c> header (which the
/// endpoint strips before the message is stored or signed), the JSON form's <c>tags</c> object, or
/// <c>send --tag</c>. Stored with every recipient record and carried in its events, so they are bounded:
/// at most <see cref="MaxTags"/>, keys of 1–64 characters of [A-Za-z0-9_.-], values of up to 256 printable
/// ASCII characters. A tag outside the bounds refuses the whole submission (400 invalid-tags), naming it.
/// </summary>
public static class MessageTags
{
    public const string HeaderName = "X-CloudDelivery-Tags";

    public const int MaxTags = 10;

    public const int MaxKeyLength = 64;

    public const int MaxValueLength = 256;

    /// <summary>
    /// The most header text (unfolded, over all its fields) taken: ten tags at their largest fit well
    /// within it; more is refused at once rather than collected.
    /// </summary>
    public const int MaxHeaderLength = 8192;

    /// <summary>
    /// Parses the values of the message's <c>X-CloudDelivery-Tags</c> fields (unfolded, RFC 5322 §2.2.3):
    /// <c>key=value</c> items separated by ";", white space around items, keys and values ignored, empty
    /// items skipped. A key given twice in the header is refused: which one was meant is not ours to guess.
    /// </summary>
    /// <exception cref="SubmissionException">A tag is malformed or out of bounds.</exception>
    public static Dictionary<string, string> ParseHeader(IEnumerable<string> fieldValues)
    {
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in fieldValues.SelectMany(v => v.Split(';')))
        {
            var text = item.Trim(' ', '\t');
            if (text.Length == 0)
            {
                continue;
            }
            var equals = text.IndexOf('=', StringComparison.Ordinal);
            if (equals < 0)
            {
                throw Invalid($"{HeaderName} item \"{Shown(text)}\" is not key=value");
            }
            var key = text[..equals].Trim(' ', '\t');
            var value = text[(equals + 1)..].Trim(' ', '\t');
            if (!tags.TryAdd(key, value))
            {
                throw Invalid($"tag \"{Shown(key)}\" is given twice in {HeaderName}");
            }
        }
        return tags;
    }

    /// <summary>
    /// The tags stored: those of the request (JSON or CLI) and those of the header, the request's winning
    /// on a key both name (the request is the application's explicit word; the header may come from a
    /// template). Both parts and the result are checked against the bounds.
    /// </summary>
    /// <exception cref="SubmissionException">A tag is out of bounds, or there are more than <see cref="MaxTags"/>.</exception>
    public static IReadOnlyDictionary<string, string>? Merge(IReadOnlyDictionary<string, string>? fromRequest, IReadOnlyDictionary<string, string>? fromHeader)
    {
        if (fromHeader is not { Count: > 0 })
        {
            Validate(fromRequest);
            return fromRequest is { Count: > 0 } ? fromRequest : null;
        }
        var merged = new Dictionary<string, string>(fromHeader, StringComparer.Ordinal);
        foreach (var (key, value) in fromRequest ?? new Dictionary<string, string>())
        {
            merged[key] = value;
        }
        Validate(merged);
        return merged;
    }

    /// <summary>Checks every tag against the bounds.</summary>
    /// <exception cref="SubmissionException">The first tag out of bounds, named, and why.</exception>
    public static void Validate(IReadOnlyDictionary<string, string>? tags)
    {
        if (tags is null)
        {
            return;
        }
        if (tags.Count > MaxTags)
        {
            throw Invalid($"{tags.Count} tags: at most {MaxTags} are taken");
        }
        foreach (var (key, value) in tags.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (KeyProblem(key) is { } keyProblem)
            {
                throw Invalid($"tag \"{Shown(key)}\": {keyProblem}");
            }
            if (ValueProblem(value) is { } valueProblem)
            {
                throw Invalid($"tag \"{key}\": {valueProblem}");
            }
        }
    }

    /// <summary>Splits a <c>key=value</c> of <c>send --tag</c> at its first "="; the bounds are checked at submission.</summary>
    public static bool TrySplit(string text, out string key, out string value)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        key = equals < 0 ? text : text[..equals];
        value = equals < 0 ? string.Empty : text[(equals + 1)..];
        return equals >= 0;
    }

    private static string? KeyProblem(string? key) =>
        string.IsNullOrEmpty(key) ? "the key is empty"
        : key.Length > MaxKeyLength ? $"the key is longer than {MaxKeyLength} characters"
        : !key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-') ? "the key may hold only A-Z, a-z, 0-9, '_', '.' and '-'"
        : null;

    private static string? ValueProblem(string? value) =>
        value is null ? "the value is missing"
        : value.Length > MaxValueLength ? $"the value is longer than {MaxValueLength} characters"
        : !value.All(c => c is >= ' ' and <= '~') ? "the value may hold only printable ASCII (no control characters, no 8-bit)"
        : null;

    /// <summary>A bounded, printable rendering of untrusted text for an error message.</summary>
    private static string Shown(string text)
    {
        var printable = new string(text.Take(MaxKeyLength + 1).Select(c => c is >= ' ' and <= '~' && c != '"' ? c : '?').ToArray());
        return text.Length > MaxKeyLength ? printable[..MaxKeyLength] + "…" : printable;
    }

    private static SubmissionException Invalid(string message) => new(SubmissionError.InvalidTags, message);
}
