using CloudDelivery.Addressing;

namespace CloudDelivery.Tls;

// The operator's TLS policy table, after Postfix's smtp_tls_policy_maps: the operator may raise the TLS
// floor for a destination or for all mail of a sender domain (encrypt, verify, dane-only), or lower it to
// "none" for one named receiver whose TLS is broken. The table only chooses a level; what the level means
// next to DANE, MTA-STS and REQUIRETLS is decided in one place, Delivery/TlsPolicyDecision.
//
// One entry a line (a file) or per ';' (one app setting):
//   example.com            encrypt                 the recipient domain example.com
//   .example.com           verify                  every subdomain of example.com (not example.com itself)
//   mx:.protection.outlook.com  verify             MX hosts under that suffix (mx:host for one host)
//   sender:bank.example    verify match=mx.partner.example:.partner.example
//                                                  all mail from bank.example (sender:.bank.example: its subdomains)
// '#' starts a comment. match= (verify only) lists the names a WebPKI certificate may carry instead of the
// MX host name, ":"-separated; ".suffix" accepts any name under the suffix.

/// <summary>The operator's TLS levels, weakest first: when several entries apply, the strictest wins.</summary>
public enum OperatorTlsLevel
{
    /// <summary>No STARTTLS even when offered, for a named broken receiver; yields to DANE, enforced MTA-STS and REQUIRETLS.</summary>
    None,

    /// <summary>Opportunistic TLS with plaintext fallback (RFC 7435): what happens without any entry.</summary>
    May,

    /// <summary>STARTTLS required, any certificate, no plaintext fallback.</summary>
    Encrypt,

    /// <summary>STARTTLS with a verified certificate: DANE where the host has usable TLSA records, else WebPKI for the expected names.</summary>
    Verify,

    /// <summary>Usable authentic DANE TLSA records required (RFC 7672); a host without them is not used.</summary>
    DaneOnly,
}

/// <summary>What an entry is keyed by.</summary>
public enum OperatorTlsSelector
{
    /// <summary>The recipient domain, exactly or (".parent") its subdomains.</summary>
    RecipientDomain,

    /// <summary>The MX host's name, exactly or (".suffix") under a suffix.</summary>
    MxHost,

    /// <summary>The sender's domain (MAIL FROM), exactly or (".parent") its subdomains: a floor for all its mail.</summary>
    SenderDomain,
}

/// <summary>One entry of the table.</summary>
/// <param name="Selector">What the pattern is matched against.</param>
/// <param name="Pattern">A domain in ASCII form, or ".parent" for the names under it.</param>
/// <param name="Level">The level it asks for.</param>
/// <param name="MatchNames">For verify: names (or ".suffix" patterns) a WebPKI certificate may carry instead of the MX host name; empty for the default.</param>
/// <param name="Origin">Where it was written, e.g. "line 3 of /etc/tls-policy", shown by probe.</param>
public sealed record OperatorTlsPolicy(OperatorTlsSelector Selector, string Pattern, OperatorTlsLevel Level, IReadOnlyList<string> MatchNames, string Origin)
{
    /// <summary>The entry as written in the table ("sender:bank.example verify match=...").</summary>
    public override string ToString()
    {
        var prefix = Selector switch { OperatorTlsSelector.MxHost => "mx:", OperatorTlsSelector.SenderDomain => "sender:", _ => string.Empty };
        var match = MatchNames.Count > 0 ? " match=" + string.Join(':', MatchNames) : string.Empty;
        return $"{prefix}{Pattern} {OperatorTlsLevels.Name(Level)}{match}";
    }

    /// <summary>The pattern matches <paramref name="name"/>: equal, or for ".parent" a name strictly under it.</summary>
    public bool Matches(Domain? name) => name is not null && OperatorTlsLevels.NameMatches(Pattern, name.Ascii);
}

/// <summary>
/// The entry that decides one host's operator level, with the words a sender reads when it causes a
/// failure ("this service's policy for example.com").
/// </summary>
/// <param name="Policy">The strictest entry that applies.</param>
/// <param name="AppliesTo">What the entry covers, in a sender's words: "example.com", "mail from bank.example", "MX host mx.example.com".</param>
public sealed record OperatorTlsMatch(OperatorTlsPolicy Policy, string AppliesTo)
{
    public OperatorTlsLevel Level => Policy.Level;

    /// <summary>"encrypt", "verify", "dane-only" and so on.</summary>
    public string LevelName => OperatorTlsLevels.Name(Policy.Level);
}

/// <summary>Names of the levels as written in the table.</summary>
public static class OperatorTlsLevels
{
    private static readonly (string Name, OperatorTlsLevel Level)[] Names =
    [
        ("none", OperatorTlsLevel.None),
        ("may", OperatorTlsLevel.May),
        ("encrypt", OperatorTlsLevel.Encrypt),
        ("verify", OperatorTlsLevel.Verify),
        ("dane-only", OperatorTlsLevel.DaneOnly),
    ];

    /// <summary>The written name of <paramref name="level"/>.</summary>
    public static string Name(OperatorTlsLevel level) => Names.First(n => n.Level == level).Name;

    /// <summary>The level written <paramref name="name"/> (case-insensitive).</summary>
    public static bool TryParse(string name, out OperatorTlsLevel level)
    {
        foreach (var (written, value) in Names)
        {
            if (string.Equals(written, name, StringComparison.OrdinalIgnoreCase))
            {
                level = value;
                return true;
            }
        }
        level = OperatorTlsLevel.May;
        return false;
    }

    /// <summary>All written names, for error messages.</summary>
    public static string All => string.Join(", ", Names.Select(n => n.Name));

    /// <summary>
    /// <paramref name="pattern"/> matches <paramref name="asciiName"/>: equal, or for ".parent" strictly
    /// under it, as Postfix's ".example.com" (without parent_domain_matches_subdomains).
    /// </summary>
    public static bool NameMatches(string pattern, string asciiName) => pattern.StartsWith('.')
        ? asciiName.Length > pattern.Length && asciiName.EndsWith(pattern, StringComparison.OrdinalIgnoreCase)
        : string.Equals(pattern, asciiName, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// The operator's TLS policies per destination (recipient domain or MX host suffix) and per sender domain,
/// as Postfix's smtp_tls_policy_maps: raise the floor (encrypt, verify, dane-only) or lower it for a named
/// broken receiver (none). None of them lowers what MTA-STS enforce, DANE or REQUIRETLS demand; that rule
/// lives in <see cref="Delivery.TlsPolicyDecision"/>.
/// </summary>
public sealed class OperatorTlsPolicies
{
    /// <summary>A table longer than this is a mistake (a wrong file), not a policy.</summary>
    public const int MaxEntries = 10_000;

    /// <summary>Longest line or inline entry accepted.</summary>
    public const int MaxLineLength = 2_000;

    private OperatorTlsPolicies(IReadOnlyList<OperatorTlsPolicy> entries) => Entries = entries;

    /// <summary>No operator policy: today's opportunistic default everywhere.</summary>
    public static OperatorTlsPolicies None { get; } = new([]);

    /// <summary>The entries in the order written.</summary>
    public IReadOnlyList<OperatorTlsPolicy> Entries { get; }

    /// <summary>The table of several parsed sources, in order.</summary>
    public static OperatorTlsPolicies Of(IEnumerable<OperatorTlsPolicy> entries) => new([.. entries]);

    /// <summary>
    /// Parses a policy file: one entry a line, '#' comments, blank lines ignored. Every problem is returned
    /// as "line N: what is wrong"; the table is null when there is any.
    /// </summary>
    public static (OperatorTlsPolicies? Policies, IReadOnlyList<string> Problems) ParseFile(string text, string origin) =>
        Parse(text.Split('\n'), i => $"line {i}", origin);

    /// <summary>Parses the inline form: entries separated by ';', problems as "entry N: what is wrong".</summary>
    public static (OperatorTlsPolicies? Policies, IReadOnlyList<string> Problems) ParseInline(string text, string origin) =>
        Parse(text.Split(';'), i => $"entry {i}", origin);

    /// <summary>The strictest entry for mail from <paramref name="senderDomain"/>; null when none applies.</summary>
    public OperatorTlsPolicy? ForSender(Domain? senderDomain) =>
        Strictest(Entries.Where(e => e.Selector == OperatorTlsSelector.SenderDomain && e.Matches(senderDomain)));

    /// <summary>
    /// The strictest entry for one host of a recipient domain and a sender floor (from <see cref="ForSender"/>),
    /// with the words for what it covers; null when no entry applies. Ties go to the entry written first,
    /// recipient domain entries before MX host entries before the sender floor.
    /// </summary>
    public OperatorTlsMatch? For(Domain? recipientDomain, Domain? mxHost, OperatorTlsPolicy? senderFloor)
    {
        var candidates = Entries.Where(e => e.Selector == OperatorTlsSelector.RecipientDomain && e.Matches(recipientDomain))
            .Concat(Entries.Where(e => e.Selector == OperatorTlsSelector.MxHost && e.Matches(mxHost)))
            .Concat(senderFloor is null ? [] : [senderFloor]);
        if (Strictest(candidates) is not { } policy)
        {
            return null;
        }
        var appliesTo = policy.Selector switch
        {
            OperatorTlsSelector.RecipientDomain => recipientDomain!.Ascii,
            OperatorTlsSelector.MxHost => $"MX host {mxHost!.Ascii}",
            _ => $"mail from {(policy.Pattern.StartsWith('.') ? policy.Pattern[1..] : policy.Pattern)}",
        };
        return new OperatorTlsMatch(policy, appliesTo);
    }

    /// <summary>The strictest of <paramref name="entries"/>, the first written on a tie; "none" only wins alone.</summary>
    private static OperatorTlsPolicy? Strictest(IEnumerable<OperatorTlsPolicy> entries)
    {
        OperatorTlsPolicy? strictest = null;
        foreach (var entry in entries)
        {
            if (strictest is null || entry.Level > strictest.Level)
            {
                strictest = entry;
            }
        }
        return strictest;
    }

    private static (OperatorTlsPolicies? Policies, IReadOnlyList<string> Problems) Parse(string[] lines, Func<int, string> where, string origin)
    {
        var entries = new List<OperatorTlsPolicy>();
        var problems = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            var place = where(i + 1);
            var line = lines[i];
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
            {
                line = line[..hash];
            }
            line = line.Trim();
            if (line.Length == 0)
            {
                continue;
            }
            if (line.Length > MaxLineLength)
            {
                problems.Add($"{place}: longer than {MaxLineLength} characters");
                continue;
            }
            if (entries.Count == MaxEntries)
            {
                problems.Add($"{place}: more than {MaxEntries} entries");
                break;
            }
            if (ParseEntry(line, $"{place} of {origin}", out var entry) is { } problem)
            {
                problems.Add($"{place}: {problem}");
                continue;
            }
            entries.Add(entry!);
        }
        return problems.Count > 0 ? (null, problems) : (new OperatorTlsPolicies(entries), problems);
    }

    /// <summary>One entry: "[mx:|sender:]pattern level [match=name:.suffix]"; returns the problem, or null.</summary>
    private static string? ParseEntry(string line, string origin, out OperatorTlsPolicy? entry)
    {
        entry = null;
        var fields = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 2)
        {
            return "expected \"destination level\", e.g. \"example.com encrypt\"";
        }
        var (selector, pattern) = fields[0] switch
        {
            var f when f.StartsWith("mx:", StringComparison.OrdinalIgnoreCase) => (OperatorTlsSelector.MxHost, f[3..]),
            var f when f.StartsWith("sender:", StringComparison.OrdinalIgnoreCase) => (OperatorTlsSelector.SenderDomain, f[7..]),
            var f => (OperatorTlsSelector.RecipientDomain, f),
        };
        if (NormalisePattern(pattern, out var normalised) is { } badPattern)
        {
            return badPattern;
        }
        if (!OperatorTlsLevels.TryParse(fields[1], out var level))
        {
            return $"unknown level \"{fields[1]}\" (expected one of {OperatorTlsLevels.All})";
        }
        var matchNames = new List<string>();
        foreach (var attribute in fields.Skip(2))
        {
            if (!attribute.StartsWith("match=", StringComparison.OrdinalIgnoreCase))
            {
                return $"unknown attribute \"{attribute}\" (only match= is known)";
            }
            if (level != OperatorTlsLevel.Verify)
            {
                return "match= only goes with verify";
            }
            foreach (var name in attribute[6..].Split(':'))
            {
                if (NormalisePattern(name, out var matchName) is { } badName)
                {
                    return $"match=: {badName}";
                }
                matchNames.Add(matchName!);
            }
        }
        entry = new OperatorTlsPolicy(selector, normalised!, level, matchNames, origin);
        return null;
    }

    /// <summary>A domain or ".parent" in ASCII form (IDNA, RFC 5890); returns the problem, or null.</summary>
    private static string? NormalisePattern(string pattern, out string? normalised)
    {
        normalised = null;
        var parent = pattern.StartsWith('.');
        var name = parent ? pattern[1..] : pattern;
        if (name.Length == 0)
        {
            return "missing domain name";
        }
        // A trailing dot or an empty label would make ".example.com." and "example..com" look valid.
        if (name.StartsWith('.') || name.EndsWith('.') || name.Contains("..", StringComparison.Ordinal))
        {
            return $"\"{pattern}\" is not a domain name";
        }
        if (!Domain.TryParse(name, out var domain, out var error))
        {
            return $"\"{pattern}\" is not a domain name: {error}";
        }
        normalised = parent ? "." + domain.Ascii : domain.Ascii;
        return null;
    }
}
