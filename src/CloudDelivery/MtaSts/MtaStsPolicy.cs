using System.Globalization;
using CloudDelivery.Addressing;

namespace CloudDelivery.MtaSts;

// MTA-STS (RFC 8461) lets a recipient domain say "mail for me must go over verified TLS to these MX
// hosts". It publishes a TXT record at _mta-sts.<domain> whose id changes with the policy, and serves the
// policy itself over HTTPS at https://mta-sts.<domain>/.well-known/mta-sts.txt, where WebPKI protects it.
// A sender caches the policy for max_age seconds. In mode "enforce" it only delivers to MX hosts matching
// the policy's patterns over TLS with a valid certificate for the MX name; in "testing" it delivers anyway
// and reports failures (TLSRPT); "none" withdraws a policy. This folder parses records and policies,
// fetches policies, caches them, and answers "which policy applies to this domain now?".

/// <summary>The mode of a policy (RFC 8461 §3.2).</summary>
public enum MtaStsMode
{
    /// <summary>Deliver only to matching MX hosts with verified TLS.</summary>
    Enforce,

    /// <summary>Deliver as usual, report what enforcement would have refused.</summary>
    Testing,

    /// <summary>No policy is in force (used to withdraw one).</summary>
    None,
}

/// <summary>Why a record or policy text was rejected.</summary>
public sealed class MtaStsSyntaxException(string message) : FormatException(message);

/// <summary>The _mta-sts TXT record (RFC 8461 §3.1).</summary>
/// <param name="Id">The policy id: changes whenever the policy does.</param>
/// <param name="Extensions">Other key=value fields, kept for completeness.</param>
public sealed record MtaStsRecord(string Id, IReadOnlyList<KeyValuePair<string, string>> Extensions)
{
    /// <summary>True when a TXT string claims to be an MTA-STS record (starts with "v=STSv1").</summary>
    public static bool LooksLikeRecord(string txt) => txt.StartsWith("v=STSv1", StringComparison.Ordinal) && (txt.Length == 7 || txt[7] is ';' or ' ' or '\t');

    /// <summary>Parses a record; fields are separated by ";" with optional whitespace.</summary>
    /// <exception cref="MtaStsSyntaxException">The text starts like a record but is invalid.</exception>
    public static MtaStsRecord Parse(string txt)
    {
        if (!LooksLikeRecord(txt))
        {
            throw new MtaStsSyntaxException("record does not start with v=STSv1");
        }
        string? id = null;
        var extensions = new List<KeyValuePair<string, string>>();
        var fields = txt.Split(';');
        for (var i = 1; i < fields.Length; i++)
        {
            var field = fields[i].Trim(' ', '\t');
            if (field.Length == 0 && i == fields.Length - 1)
            {
                break; // a trailing ";" is allowed (sts-text-record = ... [";"])
            }
            var eq = field.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new MtaStsSyntaxException($"field {field} is not key=value");
            }
            var key = field[..eq];
            var value = field[(eq + 1)..];
            if (!key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') || !char.IsAsciiLetterOrDigit(key[0]) || key.Length > 32)
            {
                throw new MtaStsSyntaxException($"invalid field name {key}");
            }
            if (key == "id")
            {
                // RFC 8461 §3.1: 1 to 32 alphanumeric characters.
                if (value.Length is 0 or > 32 || !value.All(char.IsAsciiLetterOrDigit))
                {
                    throw new MtaStsSyntaxException($"invalid id {value}");
                }
                id ??= value;
            }
            else
            {
                if (value.Length == 0 || value.Any(c => c < 0x21 || c > 0x7e || c is '=' or ';'))
                {
                    throw new MtaStsSyntaxException($"invalid value for {key}");
                }
                extensions.Add(new(key, value));
            }
        }
        return id is null ? throw new MtaStsSyntaxException("record has no id") : new MtaStsRecord(id, extensions);
    }
}

/// <summary>An MX pattern of a policy: a host name, or "*." and a parent domain matching one more label.</summary>
public sealed record MtaStsMxPattern(bool Wildcard, Domain Domain)
{
    public override string ToString() => Wildcard ? "*." + Domain.Ascii : Domain.Ascii;
}

/// <summary>A parsed MTA-STS policy (RFC 8461 §3.2).</summary>
public sealed class MtaStsPolicy
{
    /// <summary>The largest max_age allowed: one year (RFC 8461 §3.2).</summary>
    public const long MaxAgeLimitSeconds = 31557600;

    private MtaStsPolicy(MtaStsMode mode, IReadOnlyList<MtaStsMxPattern> mx, long maxAgeSeconds, IReadOnlyList<string> lines)
    {
        Mode = mode;
        Mx = mx;
        MaxAge = TimeSpan.FromSeconds(maxAgeSeconds);
        Lines = lines;
    }

    public MtaStsMode Mode { get; }

    public IReadOnlyList<MtaStsMxPattern> Mx { get; }

    /// <summary>How long the policy may be cached.</summary>
    public TimeSpan MaxAge { get; }

    /// <summary>The policy text line by line, as TLSRPT's policy-string wants it.</summary>
    public IReadOnlyList<string> Lines { get; }

    /// <summary>The MX patterns as strings, TLSRPT's mx-host.</summary>
    public IReadOnlyList<string> MxHostPatterns => Mx.Select(m => m.ToString()).ToArray();

    /// <summary>
    /// Parses a policy. Lines end in CRLF or LF; each is "key: value". version, mode and max_age are
    /// required, mx too unless the mode is none; unknown keys are kept but ignored (RFC 8461 §3.2). A
    /// repeated key keeps its first value, except mx, which may repeat.
    /// </summary>
    /// <exception cref="MtaStsSyntaxException">The text is not a valid policy.</exception>
    public static MtaStsPolicy Parse(string text)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').ToList();
        if (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }
        string? version = null;
        MtaStsMode? mode = null;
        long? maxAge = null;
        var mx = new List<MtaStsMxPattern>();
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.Contains('\r', StringComparison.Ordinal))
            {
                throw new MtaStsSyntaxException($"line {i + 1}: stray CR");
            }
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new MtaStsSyntaxException($"line {i + 1}: expected \"key: value\"");
            }
            var key = line[..colon];
            var value = line[(colon + 1)..].Trim(' ', '\t');
            if (!key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') || key.Length > 32)
            {
                throw new MtaStsSyntaxException($"line {i + 1}: invalid key {key}");
            }
            switch (key)
            {
                case "version":
                    if (value != "STSv1")
                    {
                        throw new MtaStsSyntaxException($"line {i + 1}: unsupported version {value}");
                    }
                    version ??= value;
                    break;
                case "mode":
                    var parsed = value switch
                    {
                        "enforce" => MtaStsMode.Enforce,
                        "testing" => MtaStsMode.Testing,
                        "none" => MtaStsMode.None,
                        _ => throw new MtaStsSyntaxException($"line {i + 1}: unknown mode {value}"),
                    };
                    mode ??= parsed;
                    break;
                case "max_age":
                    // RFC 8461 §3.2: 1 to 10 digits, at most 31557600.
                    if (value.Length is 0 or > 10 || !value.All(char.IsAsciiDigit) || !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds > MaxAgeLimitSeconds)
                    {
                        throw new MtaStsSyntaxException($"line {i + 1}: invalid max_age {value}");
                    }
                    maxAge ??= seconds;
                    break;
                case "mx":
                    mx.Add(ParsePattern(value, i + 1));
                    break;
                default:
                    if (value.Any(c => c < 0x20 || c == 0x7f))
                    {
                        throw new MtaStsSyntaxException($"line {i + 1}: invalid value for {key}");
                    }
                    break;
            }
        }
        if (version is null)
        {
            throw new MtaStsSyntaxException("missing version");
        }
        if (mode is null)
        {
            throw new MtaStsSyntaxException("missing mode");
        }
        if (maxAge is null)
        {
            throw new MtaStsSyntaxException("missing max_age");
        }
        if (mx.Count == 0 && mode != MtaStsMode.None)
        {
            throw new MtaStsSyntaxException("missing mx for mode " + mode.Value.ToString().ToLowerInvariant());
        }
        return new MtaStsPolicy(mode.Value, mx, maxAge.Value, lines);
    }

    /// <summary>
    /// True when <paramref name="host"/> matches an mx pattern (RFC 8461 §4.1): exactly, or for "*.d" when
    /// the host is one label below d. Names compare as A-labels, case-insensitively.
    /// </summary>
    public bool Matches(Domain host)
    {
        foreach (var pattern in Mx)
        {
            if (!pattern.Wildcard)
            {
                if (pattern.Domain == host)
                {
                    return true;
                }
                continue;
            }
            var dot = host.Ascii.IndexOf('.', StringComparison.Ordinal);
            if (dot > 0 && host.Ascii[(dot + 1)..] == pattern.Domain.Ascii)
            {
                return true;
            }
        }
        return false;
    }

    private static MtaStsMxPattern ParsePattern(string value, int line)
    {
        var wildcard = value.StartsWith("*.", StringComparison.Ordinal);
        var name = wildcard ? value[2..] : value;
        // The wildcard may only be the whole leftmost label (RFC 8461 §3.2 "mx").
        if (name.Contains('*', StringComparison.Ordinal) || !Domain.TryParse(name, out var domain, out _) || name.EndsWith('.'))
        {
            throw new MtaStsSyntaxException($"line {line}: invalid mx pattern {value}");
        }
        return new MtaStsMxPattern(wildcard, domain);
    }
}
