using System.Text.Json;
using System.Text.Json.Serialization;

namespace CloudDelivery.Shaping;

/// <summary>
/// The budget of one destination: how many connections at once, messages per connection, per minute and
/// per hour. A null limit is no limit.
/// </summary>
public sealed record ShapingLimits(int? Connections = null, int? MessagesPerConnection = null, int? MessagesPerMinute = null, int? MessagesPerHour = null);

/// <summary>
/// One rule: the destinations it matches — recipient domains (exact, or "*.example.com" for every
/// subdomain) or MX host suffixes ("google.com" matches aspmx.l.google.com) — and their shared budget. Every
/// destination a rule matches spends from the one budget named <see cref="Name"/>.
/// </summary>
public sealed record ShapingRule(string Name, IReadOnlyList<string> Domains, IReadOnlyList<string> MxSuffixes, ShapingLimits Limits);

/// <summary>What the engine does when a receiver throttles us, and how long a run may wait for a permit.</summary>
/// <param name="InitialPause">Pause after the first throttling reply; doubled per consecutive one.</param>
/// <param name="MaxPause">The longest pause.</param>
/// <param name="MinimumPerMinute">The floor the rate is halved down to.</param>
/// <param name="RecoveryPerCleanMessage">Share of the configured rate regained per message accepted without throttling.</param>
/// <param name="MaxWaitInRun">Longest a delivery run waits for a message permit before deferring; short, so a run never holds a worker for a slow destination.</param>
/// <param name="ConnectionRetryAfter">RetryAfter of messages deferred because every connection of their budget is in use.</param>
public sealed record ThrottleSettings(
    TimeSpan InitialPause,
    TimeSpan MaxPause,
    int MinimumPerMinute,
    double RecoveryPerCleanMessage,
    TimeSpan MaxWaitInRun,
    TimeSpan ConnectionRetryAfter)
{
    /// <summary>Values of a rules file that names none.</summary>
    public static ThrottleSettings Fallback { get; } = new(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(30), 1, 0.05, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
}

/// <summary>
/// The traffic-shaping rules: per recipient domain or MX host suffix, how many connections at once, how many
/// messages per connection and per minute or hour. Shipped as data (the embedded TrafficShapingRules.json)
/// with defaults the operator can override with a file of the same shape: an operator rule replaces a
/// shipped rule of the same name or with any of the same matches, and is consulted first.
/// </summary>
public sealed class TrafficShapingRules
{
    /// <summary>Longest rules file read; a larger one is refused rather than buffered.</summary>
    public const int MaxFileBytes = 1024 * 1024;

    private TrafficShapingRules(ShapingLimits defaultLimits, ThrottleSettings throttling, IReadOnlyList<ShapingRule> rules)
    {
        DefaultLimits = defaultLimits;
        Throttling = throttling;
        Rules = rules;
    }

    // Before Default: static initialisers run in textual order, and loading the shipped rules needs these.
    private static readonly JsonSerializerOptions FileOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 8,
    };

    /// <summary>The shipped defaults.</summary>
    public static TrafficShapingRules Default { get; } = LoadShipped();

    /// <summary>The budget of a recipient domain no rule matches; each such domain has its own.</summary>
    public ShapingLimits DefaultLimits { get; }

    public ThrottleSettings Throttling { get; }

    /// <summary>The rules, the operator's first.</summary>
    public IReadOnlyList<ShapingRule> Rules { get; }

    /// <summary>Rules read from <paramref name="json"/> alone, without the shipped ones (tests, tools).</summary>
    /// <exception cref="FormatException">The text is not a rules file; the message says where (line and position, or the field's path) and why.</exception>
    public static TrafficShapingRules Parse(string json) =>
        Merge(new TrafficShapingRules(new ShapingLimits(), ThrottleSettings.Fallback, []), ParseModel(json));

    /// <summary>These rules with the operator's <paramref name="json"/> laid over them.</summary>
    /// <exception cref="FormatException">The text is not a rules file; the message says where and why.</exception>
    public TrafficShapingRules WithOverrides(string json) => Merge(this, ParseModel(json));

    /// <summary>The shipped rules with the operator's file at <paramref name="path"/> laid over them.</summary>
    /// <exception cref="FormatException">The file cannot be read or is not a rules file.</exception>
    public static TrafficShapingRules LoadWithOverrides(string path)
    {
        string text;
        try
        {
            using var file = File.OpenRead(path);
            if (file.Length > MaxFileBytes)
            {
                throw new FormatException($"{path}: larger than {MaxFileBytes} bytes");
            }
            using var reader = new StreamReader(file);
            text = reader.ReadToEnd();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new FormatException($"{path}: cannot be read: {e.Message}", e);
        }
        try
        {
            return Default.WithOverrides(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// These rules for one of <paramref name="instances"/> instances delivering at once: each shared rule
    /// (an MX suffix, a wildcard or several domains: budgets that many lease holders spend at once) keeps this
    /// share of its per-minute and per-hour messages and connections, rounded up and at least 1. A rule of one
    /// domain, and the default per-domain budget, are spent by the domain's lease holder alone and stay whole.
    /// </summary>
    public TrafficShapingRules SharedBy(int instances)
    {
        if (instances <= 1)
        {
            return this;
        }
        int? Share(int? limit) => limit is { } whole ? Math.Max(1, (whole + instances - 1) / instances) : null;
        var rules = Rules.Select(rule => rule.MxSuffixes.Count > 0 || rule.Domains.Count > 1 || rule.Domains.Any(d => d.StartsWith("*.", StringComparison.Ordinal))
            ? rule with { Limits = rule.Limits with { Connections = Share(rule.Limits.Connections), MessagesPerMinute = Share(rule.Limits.MessagesPerMinute), MessagesPerHour = Share(rule.Limits.MessagesPerHour) } }
            : rule).ToList();
        return new TrafficShapingRules(DefaultLimits, Throttling, rules);
    }

    /// <summary>The rule naming <paramref name="domain"/> (ASCII, lower case): an exact entry, else the longest "*.parent" entry.</summary>
    public ShapingRule? MatchRecipientDomain(string domain)
    {
        domain = domain.TrimEnd('.').ToLowerInvariant();
        ShapingRule? best = null;
        var bestLength = -1;
        foreach (var rule in Rules)
        {
            foreach (var entry in rule.Domains)
            {
                if (entry == domain)
                {
                    return rule;
                }
                if (entry.StartsWith("*.", StringComparison.Ordinal) && domain.EndsWith(entry[1..], StringComparison.Ordinal) && entry.Length > bestLength)
                {
                    (best, bestLength) = (rule, entry.Length);
                }
            }
        }
        return best;
    }

    /// <summary>The rule with the longest MX suffix that <paramref name="host"/> ends with, at a label boundary.</summary>
    public ShapingRule? MatchMxHost(string host)
    {
        host = host.TrimEnd('.').ToLowerInvariant();
        ShapingRule? best = null;
        var bestLength = -1;
        foreach (var rule in Rules)
        {
            foreach (var suffix in rule.MxSuffixes)
            {
                var matches = host == suffix || (host.EndsWith(suffix, StringComparison.Ordinal) && host[host.Length - suffix.Length - 1] == '.');
                if (matches && suffix.Length > bestLength)
                {
                    (best, bestLength) = (rule, suffix.Length);
                }
            }
        }
        return best;
    }

    private static TrafficShapingRules LoadShipped()
    {
        using var stream = typeof(TrafficShapingRules).Assembly.GetManifestResourceStream("CloudDelivery.Shaping.TrafficShapingRules.json")
            ?? throw new InvalidOperationException("the shipped traffic-shaping rules are missing from the assembly");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd());
    }

    private static FileModel ParseModel(string json)
    {
        FileModel? model;
        try
        {
            model = JsonSerializer.Deserialize<FileModel>(json, FileOptions);
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $"line {line + 1}, position {(e.BytePositionInLine ?? 0) + 1}" : "the file";
            var path = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? string.Empty : $" ({e.Path})";
            throw new FormatException($"{where}{path}: {FirstSentence(e.Message)}", e);
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"the file: {FirstSentence(e.Message)}", e);
        }
        return model ?? throw new FormatException("line 1, position 1: expected an object with \"default\", \"throttling\" and \"rules\"");
    }

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(" Path:", StringComparison.Ordinal);
        return (end < 0 ? message : message[..end]).Trim();
    }

    private static TrafficShapingRules Merge(TrafficShapingRules under, FileModel over)
    {
        var defaults = over.Default is { } limits ? ValidLimits(limits, "default") : under.DefaultLimits;
        var throttling = over.Throttling is { } t ? ValidThrottling(t, under.Throttling) : under.Throttling;
        var added = (over.Rules ?? []).Select((rule, index) => ValidRule(rule, $"rules[{index}]")).ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (rule, index) in added.Select((r, i) => (r, i)))
        {
            if (!names.Add(rule.Name))
            {
                throw new FormatException($"rules[{index}].name: \"{rule.Name}\" is used by an earlier rule");
            }
        }
        var claimed = added.SelectMany(r => r.Domains.Select(d => "d:" + d).Concat(r.MxSuffixes.Select(s => "mx:" + s))).ToHashSet(StringComparer.Ordinal);
        // A rule of the file below survives only if the file above neither renames nor re-matches it.
        var kept = under.Rules.Where(r => !names.Contains(r.Name) && !r.Domains.Any(d => claimed.Contains("d:" + d)) && !r.MxSuffixes.Any(s => claimed.Contains("mx:" + s)));
        return new TrafficShapingRules(defaults, throttling, [.. added, .. kept]);
    }

    private static ShapingLimits ValidLimits(LimitsModel model, string path) => new(
        Positive(model.Connections, $"{path}.connections", 10_000),
        Positive(model.MessagesPerConnection, $"{path}.messagesPerConnection", 1_000_000),
        Positive(model.MessagesPerMinute, $"{path}.messagesPerMinute", 1_000_000),
        Positive(model.MessagesPerHour, $"{path}.messagesPerHour", 100_000_000));

    private static int? Positive(int? value, string path, int max) =>
        value is null || (value >= 1 && value <= max) ? value : throw new FormatException($"{path}: expected a whole number from 1 to {max}, not {value}");

    private static ShapingRule ValidRule(RuleModel model, string path)
    {
        var domains = (model.Domains ?? []).Select((d, i) => ValidName(d, $"{path}.domains[{i}]", wildcard: true)).ToList();
        var suffixes = (model.MxSuffixes ?? []).Select((s, i) => ValidName(s, $"{path}.mxSuffixes[{i}]", wildcard: false)).ToList();
        if (domains.Count + suffixes.Count == 0)
        {
            throw new FormatException($"{path}: a rule needs \"domains\" or \"mxSuffixes\"");
        }
        var name = model.Name ?? domains.Concat(suffixes).First();
        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '*'))
        {
            throw new FormatException($"{path}.name: expected 1 to 64 letters, digits, '-', '.' or '_'");
        }
        return new ShapingRule(name, domains, suffixes, ValidLimits(model, path));
    }

    /// <summary>A domain or suffix as DNS holds it: ASCII labels (A-labels for IDNs), lower-cased; "*." first only for domains.</summary>
    private static string ValidName(string? value, string path, bool wildcard)
    {
        var name = (value ?? string.Empty).Trim().TrimEnd('.').ToLowerInvariant();
        var labels = wildcard && name.StartsWith("*.", StringComparison.Ordinal) ? name[2..] : name;
        var valid = labels.Length is > 0 and <= 253 && labels.Split('.').All(label => label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'));
        return valid ? name : throw new FormatException($"{path}: \"{value}\" is not a domain name{(wildcard ? " (or *.domain)" : string.Empty)}");
    }

    private static ThrottleSettings ValidThrottling(ThrottlingModel model, ThrottleSettings under)
    {
        static TimeSpan Span(TimeSpan? value, TimeSpan fallback, string name, TimeSpan min, TimeSpan max) =>
            value is not { } v ? fallback : v >= min && v <= max ? v : throw new FormatException($"throttling.{name}: expected a duration from {min:c} to {max:c}, not {v:c}");
        var settings = new ThrottleSettings(
            Span(model.InitialPause, under.InitialPause, "initialPause", TimeSpan.FromSeconds(1), TimeSpan.FromHours(24)),
            Span(model.MaxPause, under.MaxPause, "maxPause", TimeSpan.FromSeconds(1), TimeSpan.FromHours(24)),
            Positive(model.MinimumPerMinute, "throttling.minimumPerMinute", 1_000_000) ?? under.MinimumPerMinute,
            model.RecoveryPerCleanMessage is not { } recovery ? under.RecoveryPerCleanMessage
                : recovery is > 0 and <= 1 ? recovery : throw new FormatException($"throttling.recoveryPerCleanMessage: expected a share above 0 and at most 1, not {recovery}"),
            Span(model.MaxWaitInRun, under.MaxWaitInRun, "maxWaitInRun", TimeSpan.Zero, TimeSpan.FromSeconds(10)),
            Span(model.ConnectionRetryAfter, under.ConnectionRetryAfter, "connectionRetryAfter", TimeSpan.FromSeconds(1), TimeSpan.FromHours(1)));
        return settings.MaxPause >= settings.InitialPause ? settings : throw new FormatException("throttling.maxPause: shorter than initialPause");
    }

    private sealed class FileModel
    {
        public LimitsModel? Default { get; set; }

        public ThrottlingModel? Throttling { get; set; }

        public List<RuleModel>? Rules { get; set; }
    }

    private class LimitsModel
    {
        public int? Connections { get; set; }

        public int? MessagesPerConnection { get; set; }

        public int? MessagesPerMinute { get; set; }

        public int? MessagesPerHour { get; set; }
    }

    private sealed class RuleModel : LimitsModel
    {
        public string? Name { get; set; }

        public List<string>? Domains { get; set; }

        public List<string>? MxSuffixes { get; set; }
    }

    private sealed class ThrottlingModel
    {
        public TimeSpan? InitialPause { get; set; }

        public TimeSpan? MaxPause { get; set; }

        public int? MinimumPerMinute { get; set; }

        public double? RecoveryPerCleanMessage { get; set; }

        public TimeSpan? MaxWaitInRun { get; set; }

        public TimeSpan? ConnectionRetryAfter { get; set; }
    }
}
