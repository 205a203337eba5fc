using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>
/// One known receiver reply and the category it means: a receiver's text is often more specific than its
/// code (Microsoft answers "451 4.7.650 … rate limited due to IP reputation", which RFC 3463 alone would
/// call a policy block). Every condition that is set must hold; a rule sets at least one.
/// </summary>
/// <param name="Category">What a matching reply means.</param>
/// <param name="Code">The basic code (RFC 5321 §4.2), e.g. "451", with "x" for any digit: "4xx" is every temporary reply.</param>
/// <param name="EnhancedCode">The enhanced code (RFC 3463 §2), e.g. "4.7.650"; "X.7.650" matches either class.</param>
/// <param name="Text">A substring of the reply's text, compared ignoring case.</param>
/// <param name="Pattern">A regular expression over the reply's text (linear time, bounded by <see cref="BounceRules.MatchTimeout"/>).</param>
/// <param name="Provider">Whose reply this is, for the reader ("Microsoft (Outlook.com, Exchange Online)").</param>
/// <param name="Source">Where the reply's text is documented.</param>
public sealed record BounceRule(BounceCategory Category, string? Code = null, string? EnhancedCode = null, string? Text = null, Regex? Pattern = null, string? Provider = null, string? Source = null)
{
    /// <summary>Whether <paramref name="reply"/> meets every condition of this rule.</summary>
    public bool Matches(SmtpReply reply)
    {
        if (Code is { } code && !CodeMatches(code, reply.Code))
        {
            return false;
        }
        if (EnhancedCode is { } enhanced && !EnhancedMatches(enhanced, reply.EnhancedCode))
        {
            return false;
        }
        if (Text is { } text && !reply.Text.Contains(text, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        if (Pattern is { } pattern)
        {
            try
            {
                return pattern.IsMatch(reply.Text);
            }
            catch (RegexMatchTimeoutException)
            {
                // A reply is untrusted input: one that exhausts the budget simply does not match.
                return false;
            }
        }
        return true;
    }

    private static bool CodeMatches(string pattern, int code)
    {
        if (code is < 100 or > 999)
        {
            return false;
        }
        var digits = code.ToString(CultureInfo.InvariantCulture);
        for (var i = 0; i < 3; i++)
        {
            if (pattern[i] is not ('x' or 'X') && pattern[i] != digits[i])
            {
                return false;
            }
        }
        return true;
    }

    // "X.7.650": the class digit is the reply's own (RFC 3463 §2); the subject and detail identify the status.
    private static bool EnhancedMatches(string expected, string? actual) =>
        actual is not null && (expected.StartsWith("X.", StringComparison.OrdinalIgnoreCase)
            ? actual.Length > 1 && actual.AsSpan(1).Equals(expected.AsSpan(1), StringComparison.Ordinal)
            : string.Equals(expected, actual, StringComparison.Ordinal));
}

/// <summary>
/// Reads bounce rules from JSON: <c>{"rules": [{"category": "throttled", "code": 451, "enhanced": "4.7.650",
/// "text": "rate limited", "provider": "Microsoft", "source": "https://…"}, …]}</c>, with "regex" instead of
/// or beside "text". The first matching rule decides; rules are data so an operator can add or override
/// them without a release.
/// </summary>
public static class BounceRules
{
    /// <summary>
    /// The time one rule's regular expression may spend on one reply. Rules compile with
    /// <see cref="RegexOptions.NonBacktracking"/>, which runs in time linear in the text; the timeout is the
    /// second bound. A reply that exhausts it does not match that rule.
    /// </summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(100);

    private static readonly JsonDocumentOptions DocumentOptions = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 8 };

    private static readonly HashSet<string> KnownFields = new(StringComparer.Ordinal) { "category", "code", "enhanced", "text", "regex", "provider", "hosts", "source", "example" };

    /// <summary>The rules in <paramref name="json"/>, in order.</summary>
    /// <exception cref="FormatException">The JSON or a rule is malformed; the message names the rule's position ("rule 3: …").</exception>
    public static IReadOnlyList<BounceRule> Parse(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new FormatException($"not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("rules", out var rules) || rules.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("expected an object with a \"rules\" array");
            }
            var parsed = new List<BounceRule>();
            var position = 0;
            foreach (var rule in rules.EnumerateArray())
            {
                position++;
                try
                {
                    parsed.Add(ParseRule(rule));
                }
                catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException)
                {
                    throw new FormatException($"rule {position}: {e.Message}", e);
                }
            }
            return parsed;
        }
    }

    private static BounceRule ParseRule(JsonElement rule)
    {
        if (rule.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("expected an object");
        }
        foreach (var field in rule.EnumerateObject())
        {
            if (!KnownFields.Contains(field.Name))
            {
                throw new FormatException($"unknown field \"{field.Name}\" (known: {string.Join(", ", KnownFields)})");
            }
        }
        var categoryName = StringOf(rule, "category") ?? throw new FormatException("\"category\" is required");
        var category = BounceClassification.TryParseName(categoryName, out var named) && named != BounceCategory.None
            ? named
            : throw new FormatException($"unknown category \"{categoryName}\" (known: {string.Join(", ", BounceClassification.Categories.Where(c => c != BounceCategory.None).Select(BounceClassification.Name))})");
        string? code = null;
        if (rule.TryGetProperty("code", out var codeElement))
        {
            code = codeElement.ValueKind switch
            {
                JsonValueKind.Number when codeElement.TryGetInt32(out var value) => value.ToString(CultureInfo.InvariantCulture),
                JsonValueKind.String => codeElement.GetString(),
                _ => null,
            };
            if (code is null || !IsCodePattern(code))
            {
                throw new FormatException("\"code\" must be a reply code such as 451, or a pattern such as \"4xx\"");
            }
        }
        var enhanced = StringOf(rule, "enhanced");
        if (enhanced is not null && !IsEnhancedPattern(enhanced))
        {
            throw new FormatException($"\"enhanced\" must be an enhanced status code such as 5.7.1 or X.7.1, not \"{enhanced}\"");
        }
        var text = StringOf(rule, "text");
        if (text is { Length: 0 })
        {
            throw new FormatException("\"text\" must not be empty");
        }
        var regex = StringOf(rule, "regex");
        Regex? pattern = null;
        if (regex is not null)
        {
            try
            {
                // Replies are untrusted: NonBacktracking matches in linear time, whatever the pattern.
                pattern = new Regex(regex, RegexOptions.NonBacktracking | RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, MatchTimeout);
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException)
            {
                throw new FormatException($"\"regex\" is not a usable regular expression: {e.Message}", e);
            }
        }
        if (code is null && enhanced is null && text is null && pattern is null)
        {
            throw new FormatException("a rule needs at least one of \"code\", \"enhanced\", \"text\", \"regex\"");
        }
        return new BounceRule(category, code, enhanced, text, pattern, StringOf(rule, "provider"), StringOf(rule, "source"));
    }

    private static string? StringOf(JsonElement rule, string name) =>
        !rule.TryGetProperty(name, out var value) ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new FormatException($"\"{name}\" must be a string");

    // A failing reply's code: class 4 or 5 (RFC 5321 §4.2.1), then two digits or "x".
    private static bool IsCodePattern(string value) =>
        value.Length == 3 && value[0] is ('4' or '5') && value.Skip(1).All(c => char.IsAsciiDigit(c) || c is 'x' or 'X');

    private static bool IsEnhancedPattern(string value)
    {
        var parts = value.Split('.');
        return parts.Length == 3
            && (parts[0] is "4" or "5" or "X" or "x")
            && parts.Skip(1).All(p => p.Length is > 0 and <= 3 && int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _));
    }

    /// <summary>The rules shipped with CloudDelivery (Delivery/bounce-rules.json, embedded), parsed once.</summary>
    public static IReadOnlyList<BounceRule> Shipped => ShippedRules.Value;

    private static readonly Lazy<IReadOnlyList<BounceRule>> ShippedRules = new(() =>
    {
        using var stream = typeof(BounceRules).Assembly.GetManifestResourceStream(ShippedResourceName)
            ?? throw new InvalidOperationException($"embedded resource {ShippedResourceName} is missing");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd());
    });

    internal const string ShippedResourceName = "CloudDelivery.Delivery.bounce-rules.json";
}
