using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Loopback.Dns;

/// <summary>Record types the loopback server knows (RFC 1035 §3.2.2, RFC 3596, RFC 6698) and names for logs.</summary>
public static class DnsRecordType
{
    public const ushort A = 1;
    public const ushort Ns = 2;
    public const ushort Cname = 5;
    public const ushort Soa = 6;
    public const ushort Mx = 15;
    public const ushort Txt = 16;
    public const ushort Aaaa = 28;
    public const ushort Srv = 33;
    public const ushort Opt = 41;
    public const ushort Ds = 43;
    public const ushort Rrsig = 46;
    public const ushort Dnskey = 48;
    public const ushort Tlsa = 52;
    public const ushort Https = 65;
    public const ushort Any = 255;

    /// <summary>The mnemonic of <paramref name="type"/>, or "TYPE<i>n</i>" for others (RFC 3597 §5).</summary>
    public static string Name(ushort type) => type switch
    {
        A => "A",
        Ns => "NS",
        Cname => "CNAME",
        Soa => "SOA",
        Mx => "MX",
        Txt => "TXT",
        Aaaa => "AAAA",
        Srv => "SRV",
        Opt => "OPT",
        Ds => "DS",
        Rrsig => "RRSIG",
        Dnskey => "DNSKEY",
        Tlsa => "TLSA",
        Https => "HTTPS",
        Any => "ANY",
        _ => "TYPE" + type.ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>One resource record of a zone, with its RDATA in wire form except for names.</summary>
internal sealed record ZoneRecord(ushort Type, byte[] Data, string? Target = null, ushort Preference = 0);

/// <summary>
/// The data a <see cref="LoopbackDnsServer"/> answers from: records per name, which names are "secure"
/// (the server sets the AD bit for them, as a validating resolver does for DNSSEC-signed data), and names
/// that fail in chosen ways (bogus with an extended DNS error, SERVFAIL, silence, a corrupt answer).
/// Names are case-insensitive (RFC 4343) and a trailing dot is optional. Thread-safe; tests change it
/// while the server runs.
/// </summary>
public sealed class DnsZone
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, List<ZoneRecord>> records = new(StringComparer.Ordinal);
    private readonly List<string> secureSuffixes = [];

    /// <summary>Per name, how many names with records lie below it: a lookup answers "exists" (RFC 8020) without scanning every name.</summary>
    private readonly Dictionary<string, int> descendants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (int Code, string Text)> bogus = new(StringComparer.Ordinal);
    private readonly HashSet<string> servFail = new(StringComparer.Ordinal);
    private readonly HashSet<string> silent = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DnsCorruption> malformed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DnsTruncation> truncated = new(StringComparer.Ordinal);

    public DnsZone AddA(string name, string address) => AddAddress(name, address, AddressFamily.InterNetwork, DnsRecordType.A);

    public DnsZone AddAaaa(string name, string address) => AddAddress(name, address, AddressFamily.InterNetworkV6, DnsRecordType.Aaaa);

    /// <summary>An MX record (RFC 1035 §3.3.9); an exchange of "." makes it a null MX.</summary>
    public DnsZone AddMx(string name, int preference, string exchange)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(preference);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(preference, ushort.MaxValue);
        return Add(name, new ZoneRecord(DnsRecordType.Mx, [], Normalize(exchange), (ushort)preference));
    }

    /// <summary>"MX 0 ." — the domain accepts no mail (RFC 7505 §3).</summary>
    public DnsZone AddNullMx(string name) => AddMx(name, 0, ".");

    public DnsZone AddCname(string name, string target) => Add(name, new ZoneRecord(DnsRecordType.Cname, [], Normalize(target)));

    /// <summary>
    /// One TXT record made of <paramref name="characterStrings"/>; a string longer than 255 bytes is split
    /// into several character-strings (RFC 1035 §3.3.14 limits each to 255), as RFC 7208 §3.3 describes.
    /// </summary>
    public DnsZone AddTxt(string name, params string[] characterStrings)
    {
        var data = new List<byte>();
        foreach (var text in characterStrings)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            var offset = 0;
            do
            {
                var length = Math.Min(255, bytes.Length - offset);
                data.Add((byte)length);
                data.AddRange(bytes.AsSpan(offset, length));
                offset += length;
            }
            while (offset < bytes.Length);
        }
        if (data.Count > ushort.MaxValue)
        {
            throw new ArgumentException($"TXT data of {data.Count} bytes exceeds the 65535 bytes of one record's RDATA", nameof(characterStrings));
        }
        return Add(name, new ZoneRecord(DnsRecordType.Txt, [.. data]));
    }

    /// <summary>A TLSA record (RFC 6698 §2.1): usage, selector, matching type, certificate association data.</summary>
    public DnsZone AddTlsa(string name, byte usage, byte selector, byte matchingType, byte[] data) =>
        Add(name, new ZoneRecord(DnsRecordType.Tlsa, [usage, selector, matchingType, .. data]));

    /// <summary>Names at or below <paramref name="nameOrSuffix"/> are answered with the AD bit.</summary>
    public DnsZone MarkSecure(string nameOrSuffix)
    {
        var suffix = Normalize(nameOrSuffix);
        lock (gate)
        {
            secureSuffixes.Add(suffix);
        }
        return this;
    }

    /// <summary>
    /// Any query for <paramref name="name"/> (or a CNAME chain through it) gets SERVFAIL with an RFC 8914
    /// extended error: 6 = DNSSEC Bogus, 7 = Signature Expired, 9 = DNSKEY Missing... (RFC 8914 §4).
    /// </summary>
    public DnsZone MarkBogus(string name, int extendedErrorCode = 6, string extraText = "")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(extendedErrorCode);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(extendedErrorCode, ushort.MaxValue);
        ArgumentNullException.ThrowIfNull(extraText);
        var key = Normalize(name);
        lock (gate)
        {
            bogus[key] = (extendedErrorCode, extraText);
        }
        return this;
    }

    /// <summary>Queries for <paramref name="name"/> get SERVFAIL without an extended error.</summary>
    public DnsZone MarkServFail(string name) => Mark(servFail, name);

    /// <summary>Queries for <paramref name="name"/> are never answered (the client times out).</summary>
    public DnsZone MarkSilent(string name) => Mark(silent, name);

    /// <summary>Queries for <paramref name="name"/> get a corrupt message, of the kind <paramref name="corruption"/> names.</summary>
    public DnsZone MarkMalformed(string name, DnsCorruption corruption = DnsCorruption.RdataPastEnd)
    {
        var key = Normalize(name);
        lock (gate)
        {
            malformed[key] = corruption;
        }
        return this;
    }

    /// <summary>
    /// UDP queries for <paramref name="name"/> get an empty answer with the TC bit set (RFC 2181 §9), however
    /// small the answer; over TCP the name is answered, or, with <see cref="DnsTruncation.TcpNeverAnswers"/>,
    /// the query is read and never answered (a hostile or broken server holding the client).
    /// </summary>
    public DnsZone MarkTruncated(string name, DnsTruncation truncation = DnsTruncation.TcpAnswers)
    {
        var key = Normalize(name);
        lock (gate)
        {
            truncated[key] = truncation;
        }
        return this;
    }

    /// <summary>How <paramref name="name"/> is truncated (see <see cref="MarkTruncated"/>), or null.</summary>
    public DnsTruncation? TruncationOf(string name)
    {
        lock (gate)
        {
            return truncated.TryGetValue(Key(name), out var truncation) ? truncation : null;
        }
    }

    /// <summary>Undoes <see cref="MarkBogus"/>, <see cref="MarkServFail"/>, <see cref="MarkSilent"/>, <see cref="MarkMalformed"/> and <see cref="MarkTruncated"/> for <paramref name="name"/>.</summary>
    public DnsZone Unmark(string name)
    {
        var key = Normalize(name);
        lock (gate)
        {
            bogus.Remove(key);
            servFail.Remove(key);
            silent.Remove(key);
            malformed.Remove(key);
            truncated.Remove(key);
        }
        return this;
    }

    /// <summary>Removes the records of <paramref name="name"/>, all or of one type ("MX", "TXT"...).</summary>
    public DnsZone Remove(string name, string? type = null)
    {
        var key = Normalize(name);
        lock (gate)
        {
            if (type is null)
            {
                RemoveName(key);
            }
            else if (records.TryGetValue(key, out var list))
            {
                list.RemoveAll(r => DnsRecordType.Name(r.Type).Equals(type, StringComparison.OrdinalIgnoreCase));
                if (list.Count == 0)
                {
                    RemoveName(key);
                }
            }
        }
        return this;
    }

    /// <summary>
    /// Parses a zone description: one record per line, "NAME [TTL] [IN] TYPE DATA" with TYPE one of A, AAAA,
    /// MX, CNAME, TXT (quoted strings, \" and \\ escapes) and TLSA (hex data may be split by spaces); comments
    /// start with # or ; outside quotes. Directives: "$secure NAME-OR-SUFFIX", "$bogus NAME [CODE [TEXT]]",
    /// "$servfail NAME", "$silent NAME", "$malformed NAME".
    /// </summary>
    /// <exception cref="FormatException">A line is not understood; the message names the line.</exception>
    public static DnsZone Parse(string zoneText)
    {
        ArgumentNullException.ThrowIfNull(zoneText);
        var zone = new DnsZone();
        var lineNumber = 0;
        foreach (var line in zoneText.Split('\n'))
        {
            lineNumber++;
            try
            {
                var fields = Tokenize(line);
                if (fields.Count > 0)
                {
                    zone.ParseLine(fields);
                }
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
            {
                throw new FormatException($"zone line {lineNumber}: {e.Message} (in \"{line.Trim()}\")", e);
            }
        }
        return zone;
    }

    private void ParseLine(List<string> fields)
    {
        var first = fields[0];
        if (first.StartsWith('$'))
        {
            var directive = first.ToLowerInvariant();
            RequireCount(fields, 2, directive == "$bogus" ? 4 : 2, $"{directive} NAME" + (directive == "$bogus" ? " [CODE [TEXT]]" : string.Empty));
            switch (directive)
            {
                case "$secure":
                    MarkSecure(fields[1]);
                    return;
                case "$bogus":
                    MarkBogus(fields[1], fields.Count > 2 ? ParseNumber(fields[2], "extended error code") : 6, fields.Count > 3 ? fields[3] : string.Empty);
                    return;
                case "$servfail":
                    MarkServFail(fields[1]);
                    return;
                case "$silent":
                    MarkSilent(fields[1]);
                    return;
                case "$malformed":
                    MarkMalformed(fields[1]);
                    return;
                default:
                    throw new FormatException($"unknown directive {first}");
            }
        }

        // RFC 1035 §5.1: an optional TTL and class may stand between the name and the type, in either order.
        var typeIndex = 1;
        while (typeIndex < fields.Count - 1 && (fields[typeIndex].All(char.IsAsciiDigit) || fields[typeIndex].Equals("IN", StringComparison.OrdinalIgnoreCase)))
        {
            typeIndex++;
        }
        if (typeIndex >= fields.Count)
        {
            throw new FormatException("expected NAME TYPE DATA");
        }
        var type = fields[typeIndex].ToUpperInvariant();
        var data = fields.Skip(typeIndex + 1).ToList();
        switch (type)
        {
            case "A":
                RequireCount(data, 1, 1, "A ADDRESS");
                AddA(first, data[0]);
                break;
            case "AAAA":
                RequireCount(data, 1, 1, "AAAA ADDRESS");
                AddAaaa(first, data[0]);
                break;
            case "CNAME":
                RequireCount(data, 1, 1, "CNAME TARGET");
                AddCname(first, data[0]);
                break;
            case "MX":
                RequireCount(data, 2, 2, "MX PREFERENCE EXCHANGE");
                AddMx(first, ParseNumber(data[0], "MX preference"), data[1]);
                break;
            case "TXT":
                RequireCount(data, 1, int.MaxValue, "TXT \"TEXT\"...");
                AddTxt(first, [.. data]);
                break;
            case "TLSA":
                RequireCount(data, 4, int.MaxValue, "TLSA USAGE SELECTOR MATCHING-TYPE HEX");
                AddTlsa(first, ParseByte(data[0], "usage"), ParseByte(data[1], "selector"), ParseByte(data[2], "matching type"), ParseHex(string.Concat(data.Skip(3))));
                break;
            default:
                throw new FormatException($"unsupported record type {fields[typeIndex]} (known: A AAAA MX CNAME TXT TLSA)");
        }
    }

    private static void RequireCount(List<string> fields, int min, int max, string usage)
    {
        if (fields.Count < min || fields.Count > max)
        {
            throw new FormatException($"expected {usage}");
        }
    }

    private static int ParseNumber(string text, string what) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : throw new FormatException($"{what} \"{text}\" is not a number");

    private static byte ParseByte(string text, string what) =>
        byte.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : throw new FormatException($"TLSA {what} \"{text}\" is not a number from 0 to 255");

    private static byte[] ParseHex(string hex)
    {
        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            throw new FormatException($"TLSA data \"{hex}\" is not an even number of hex digits");
        }
    }

    /// <summary>
    /// Splits a line into fields: whitespace separates, "quoted strings" keep spaces and may hold \" and \\
    /// (RFC 1035 §5.1), and # or ; outside quotes starts a comment.
    /// </summary>
    private static List<string> Tokenize(string line)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < line.Length)
        {
            var c = line[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (c is '#' or ';')
            {
                break;
            }
            else if (c == '"')
            {
                var text = new System.Text.StringBuilder();
                for (i++; ; i++)
                {
                    if (i >= line.Length)
                    {
                        throw new FormatException("unterminated quoted string");
                    }
                    if (line[i] == '"')
                    {
                        i++;
                        break;
                    }
                    if (line[i] == '\\' && i + 1 < line.Length)
                    {
                        i++;
                    }
                    text.Append(line[i]);
                }
                tokens.Add(text.ToString());
            }
            else
            {
                var start = i;
                while (i < line.Length && !char.IsWhiteSpace(line[i]) && line[i] is not ('#' or ';' or '"'))
                {
                    i++;
                }
                tokens.Add(line[start..i]);
            }
        }
        return tokens;
    }

    /// <summary>
    /// The lookup key of a name: lower case, no trailing dot, "" for the root. Labels must be 1 to 63
    /// ASCII characters and the whole name fit in 255 bytes on the wire (RFC 1035 §2.3.4).
    /// </summary>
    internal static string Normalize(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = Key(name);
        if (key.Length == 0)
        {
            return key;
        }
        if (key.Length > 253)
        {
            throw new ArgumentException($"name {name} is longer than 253 characters");
        }
        foreach (var label in key.Split('.'))
        {
            if (label.Length is 0 or > 63 || !label.All(char.IsAscii) || label.Any(char.IsWhiteSpace))
            {
                throw new ArgumentException($"name {name} has an empty, over-long or non-ASCII label (use the A-label form)");
            }
        }
        return key;
    }

    /// <summary>The lookup key without validation: a queried name the zone could never hold simply does not exist.</summary>
    private static string Key(string name) => (name.EndsWith('.') ? name[..^1] : name).ToLowerInvariant();

    internal ZoneLookup Lookup(string name)
    {
        var key = Key(name);
        lock (gate)
        {
            var failure = bogus.ContainsKey(key) ? ZoneFailure.Bogus
                : servFail.Contains(key) ? ZoneFailure.ServFail
                : silent.Contains(key) ? ZoneFailure.Silent
                : malformed.ContainsKey(key) ? ZoneFailure.Malformed
                : ZoneFailure.None;
            var list = records.TryGetValue(key, out var found) ? found.ToArray() : [];
            // RFC 8020: a name with descendants exists even without records of its own (an empty non-terminal).
            var exists = list.Length > 0 || key.Length == 0 || descendants.ContainsKey(key);
            var secure = secureSuffixes.Any(s => IsAtOrBelow(key, s));
            return new ZoneLookup(list, exists, secure, failure, failure == ZoneFailure.Bogus ? bogus[key] : null, malformed.GetValueOrDefault(key));
        }
    }

    private DnsZone Add(string name, ZoneRecord record)
    {
        var key = Normalize(name);
        lock (gate)
        {
            if (!records.TryGetValue(key, out var list))
            {
                records[key] = list = [];
                foreach (var ancestor in Ancestors(key))
                {
                    descendants[ancestor] = descendants.GetValueOrDefault(ancestor) + 1;
                }
            }
            list.Add(record);
        }
        return this;
    }

    /// <summary>Removes a name with records and its count in its ancestors' (under <see cref="gate"/>).</summary>
    private void RemoveName(string key)
    {
        if (!records.Remove(key))
        {
            return;
        }
        foreach (var ancestor in Ancestors(key))
        {
            if (descendants[ancestor] == 1)
            {
                descendants.Remove(ancestor);
            }
            else
            {
                descendants[ancestor]--;
            }
        }
    }

    /// <summary>"a.b.c" → "b.c", "c" (the root is not listed: it always exists).</summary>
    private static IEnumerable<string> Ancestors(string key)
    {
        for (var dot = key.IndexOf('.', StringComparison.Ordinal); dot >= 0; dot = key.IndexOf('.', dot + 1))
        {
            yield return key[(dot + 1)..];
        }
    }

    /// <summary>True when <paramref name="key"/> is <paramref name="suffix"/> or below it, without building "." + suffix.</summary>
    private static bool IsAtOrBelow(string key, string suffix) =>
        suffix.Length == 0 || key == suffix || (key.Length > suffix.Length && key[key.Length - suffix.Length - 1] == '.' && key.EndsWith(suffix, StringComparison.Ordinal));

    private DnsZone AddAddress(string name, string address, AddressFamily family, ushort type)
    {
        if (!IPAddress.TryParse(address, out var ip) || ip.AddressFamily != family)
        {
            throw new FormatException($"\"{address}\" is not an {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address");
        }
        return Add(name, new ZoneRecord(type, ip.GetAddressBytes()));
    }

    private DnsZone Mark(HashSet<string> set, string name)
    {
        var key = Normalize(name);
        lock (gate)
        {
            set.Add(key);
        }
        return this;
    }
}

/// <summary>How a <see cref="DnsZone.MarkMalformed"/> answer is broken; each breaks a different rule of RFC 1035 §4.1.</summary>
public enum DnsCorruption
{
    /// <summary>An A record whose RDLENGTH claims 200 bytes where 2 follow.</summary>
    RdataPastEnd,

    /// <summary>An answer whose owner name is a compression pointer to itself (RFC 1035 §4.1.4 loop).</summary>
    CompressionLoop,

    /// <summary>ANCOUNT claims three answers where one follows.</summary>
    MissingRecords,

    /// <summary>An MX record whose exchange starts with label length 64, beyond the 63 RFC 1035 §2.3.4 allows.</summary>
    BadLabel,
}

/// <summary>What TCP does for a name <see cref="DnsZone.MarkTruncated"/> truncates over UDP.</summary>
public enum DnsTruncation
{
    /// <summary>TCP answers normally: the client's TCP retry works (RFC 7766 §5).</summary>
    TcpAnswers,

    /// <summary>TCP reads the query and never answers: the client's retry waits until it gives up.</summary>
    TcpNeverAnswers,
}

internal enum ZoneFailure
{
    None,
    Bogus,
    ServFail,
    Silent,
    Malformed,
}

/// <summary>What the zone holds for one name at one moment.</summary>
internal sealed record ZoneLookup(ZoneRecord[] Records, bool Exists, bool Secure, ZoneFailure Failure, (int Code, string Text)? ExtendedError, DnsCorruption Corruption);
