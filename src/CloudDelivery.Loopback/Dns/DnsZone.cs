using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace CloudDelivery.Loopback.Dns;

/// <summary>Record types the loopback server knows (RFC 1035 §3.2.2, RFC 3596, RFC 6698).</summary>
public static class DnsRecordType
{
    public const ushort A = 1;
    public const ushort Cname = 5;
    public const ushort Mx = 15;
    public const ushort Txt = 16;
    public const ushort Aaaa = 28;
    public const ushort Opt = 41;
    public const ushort Tlsa = 52;

    public static string Name(ushort type) => type switch
    {
        A => "A",
        Cname => "CNAME",
        Mx => "MX",
        Txt => "TXT",
        Aaaa => "AAAA",
        Tlsa => "TLSA",
        _ => type.ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>One resource record of a zone, with its RDATA in wire form except for names.</summary>
internal sealed record ZoneRecord(ushort Type, byte[] Data, string? Target = null, ushort Preference = 0);

/// <summary>
/// The data a <see cref="LoopbackDnsServer"/> answers from: records per name, which names are "secure"
/// (the server sets the AD bit for them, as a validating resolver does for DNSSEC-signed data), and names
/// that fail in chosen ways (bogus with an extended DNS error, SERVFAIL, silence, a corrupt answer).
/// Thread-safe; tests change it while the server runs.
/// </summary>
public sealed class DnsZone
{
    private readonly object gate = new();
    private readonly Dictionary<string, List<ZoneRecord>> records = new(StringComparer.Ordinal);
    private readonly List<string> secureSuffixes = [];
    private readonly Dictionary<string, (int Code, string Text)> bogus = new(StringComparer.Ordinal);
    private readonly HashSet<string> servFail = new(StringComparer.Ordinal);
    private readonly HashSet<string> silent = new(StringComparer.Ordinal);
    private readonly HashSet<string> malformed = new(StringComparer.Ordinal);

    public DnsZone AddA(string name, string address) => AddAddress(name, address, AddressFamily.InterNetwork, DnsRecordType.A);

    public DnsZone AddAaaa(string name, string address) => AddAddress(name, address, AddressFamily.InterNetworkV6, DnsRecordType.Aaaa);

    public DnsZone AddMx(string name, int preference, string exchange) =>
        Add(name, new ZoneRecord(DnsRecordType.Mx, [], Normalize(exchange), checked((ushort)preference)));

    /// <summary>"MX 0 ." — the domain accepts no mail (RFC 7505).</summary>
    public DnsZone AddNullMx(string name) => Add(name, new ZoneRecord(DnsRecordType.Mx, [], string.Empty, 0));

    public DnsZone AddCname(string name, string target) => Add(name, new ZoneRecord(DnsRecordType.Cname, [], Normalize(target)));

    /// <summary>A TXT record; strings longer than 255 bytes are split into several character-strings (RFC 1035 §3.3.14).</summary>
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
                data.AddRange(bytes.AsSpan(offset, length).ToArray());
                offset += length;
            }
            while (offset < bytes.Length);
        }
        return Add(name, new ZoneRecord(DnsRecordType.Txt, [.. data]));
    }

    public DnsZone AddTlsa(string name, byte usage, byte selector, byte matchingType, byte[] data) =>
        Add(name, new ZoneRecord(DnsRecordType.Tlsa, [usage, selector, matchingType, .. data]));

    /// <summary>Names at or below <paramref name="nameOrSuffix"/> are answered with the AD bit.</summary>
    public DnsZone MarkSecure(string nameOrSuffix)
    {
        lock (gate)
        {
            secureSuffixes.Add(Normalize(nameOrSuffix));
        }
        return this;
    }

    /// <summary>Any query for <paramref name="name"/> gets SERVFAIL with an RFC 8914 extended error (6 = DNSSEC Bogus).</summary>
    public DnsZone MarkBogus(string name, int extendedErrorCode = 6, string extraText = "")
    {
        lock (gate)
        {
            bogus[Normalize(name)] = (extendedErrorCode, extraText);
        }
        return this;
    }

    public DnsZone MarkServFail(string name) => Mark(servFail, name);

    /// <summary>Queries for <paramref name="name"/> are never answered (the client times out).</summary>
    public DnsZone MarkSilent(string name) => Mark(silent, name);

    /// <summary>Queries for <paramref name="name"/> get a corrupt message.</summary>
    public DnsZone MarkMalformed(string name) => Mark(malformed, name);

    /// <summary>Removes the records of <paramref name="name"/>, all or of one type ("MX", "TXT"...).</summary>
    public DnsZone Remove(string name, string? type = null)
    {
        lock (gate)
        {
            var key = Normalize(name);
            if (type is null)
            {
                records.Remove(key);
            }
            else if (records.TryGetValue(key, out var list))
            {
                list.RemoveAll(r => DnsRecordType.Name(r.Type).Equals(type, StringComparison.OrdinalIgnoreCase));
            }
        }
        return this;
    }

    /// <summary>
    /// Parses a zone description: one record per line ("name TYPE data"), comments after # or ;, and
    /// directives "$secure SUFFIX", "$bogus NAME [CODE]", "$servfail NAME".
    /// </summary>
    /// <exception cref="FormatException">A line is not understood; the message names the line.</exception>
    public static DnsZone Parse(string zoneText)
    {
        var zone = new DnsZone();
        var lineNumber = 0;
        foreach (var rawLine in zoneText.Split('\n'))
        {
            lineNumber++;
            var line = StripComment(rawLine).Trim();
            if (line.Length == 0)
            {
                continue;
            }
            try
            {
                zone.ParseLine(line);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException or IndexOutOfRangeException)
            {
                throw new FormatException($"zone line {lineNumber}: {e.Message}: {line}", e);
            }
        }
        return zone;
    }

    private void ParseLine(string line)
    {
        var fields = Tokenize(line);
        if (fields[0].StartsWith('$'))
        {
            switch (fields[0].ToLowerInvariant())
            {
                case "$secure":
                    MarkSecure(fields[1]);
                    return;
                case "$bogus":
                    MarkBogus(fields[1], fields.Count > 2 ? int.Parse(fields[2], CultureInfo.InvariantCulture) : 6);
                    return;
                case "$servfail":
                    MarkServFail(fields[1]);
                    return;
                default:
                    throw new FormatException($"unknown directive {fields[0]}");
            }
        }
        if (fields.Count < 3)
        {
            throw new FormatException("expected NAME TYPE DATA");
        }
        var name = fields[0];
        var data = fields.Skip(2).ToList();
        switch (fields[1].ToUpperInvariant())
        {
            case "A":
                AddA(name, data[0]);
                break;
            case "AAAA":
                AddAaaa(name, data[0]);
                break;
            case "CNAME":
                AddCname(name, data[0]);
                break;
            case "MX":
                if (data[1] == ".")
                {
                    AddNullMx(name);
                }
                else
                {
                    AddMx(name, int.Parse(data[0], CultureInfo.InvariantCulture), data[1]);
                }
                break;
            case "TXT":
                AddTxt(name, [.. data]);
                break;
            case "TLSA":
                AddTlsa(name, byte.Parse(data[0], CultureInfo.InvariantCulture), byte.Parse(data[1], CultureInfo.InvariantCulture), byte.Parse(data[2], CultureInfo.InvariantCulture), Convert.FromHexString(string.Concat(data.Skip(3))));
                break;
            default:
                throw new FormatException($"unsupported record type {fields[1]}");
        }
    }

    private static string StripComment(string line)
    {
        var inQuotes = false;
        for (var i = 0; i < line.Length; i++)
        {
            if (line[i] == '"')
            {
                inQuotes = !inQuotes;
            }
            else if (!inQuotes && line[i] is '#' or ';')
            {
                return line[..i];
            }
        }
        return line;
    }

    private static List<string> Tokenize(string line)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < line.Length)
        {
            if (char.IsWhiteSpace(line[i]))
            {
                i++;
                continue;
            }
            if (line[i] == '"')
            {
                var end = line.IndexOf('"', i + 1);
                if (end < 0)
                {
                    throw new FormatException("unterminated quoted string");
                }
                tokens.Add(line[(i + 1)..end]);
                i = end + 1;
                continue;
            }
            var start = i;
            while (i < line.Length && !char.IsWhiteSpace(line[i]))
            {
                i++;
            }
            tokens.Add(line[start..i]);
        }
        return tokens;
    }

    internal static string Normalize(string name) => name.TrimEnd('.').ToLowerInvariant();

    internal ZoneLookup Lookup(string name)
    {
        lock (gate)
        {
            var key = Normalize(name);
            var failure = bogus.TryGetValue(key, out var ede) ? ZoneFailure.Bogus
                : servFail.Contains(key) ? ZoneFailure.ServFail
                : silent.Contains(key) ? ZoneFailure.Silent
                : malformed.Contains(key) ? ZoneFailure.Malformed
                : ZoneFailure.None;
            var list = records.TryGetValue(key, out var found) ? found.ToArray() : [];
            // RFC 8020: a name with descendants exists even without records of its own (empty non-terminal).
            var exists = list.Length > 0 || records.Keys.Any(k => k.EndsWith("." + key, StringComparison.Ordinal) && records[k].Count > 0);
            var secure = secureSuffixes.Any(s => key == s || key.EndsWith("." + s, StringComparison.Ordinal));
            return new ZoneLookup(list, exists, secure, failure, ede.Code, ede.Text ?? string.Empty);
        }
    }

    private DnsZone Add(string name, ZoneRecord record)
    {
        lock (gate)
        {
            var key = Normalize(name);
            if (!records.TryGetValue(key, out var list))
            {
                records[key] = list = [];
            }
            list.Add(record);
        }
        return this;
    }

    private DnsZone AddAddress(string name, string address, AddressFamily family, ushort type)
    {
        var ip = IPAddress.Parse(address);
        if (ip.AddressFamily != family)
        {
            throw new FormatException($"{address} is not an {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address");
        }
        return Add(name, new ZoneRecord(type, ip.GetAddressBytes()));
    }

    private DnsZone Mark(HashSet<string> set, string name)
    {
        lock (gate)
        {
            set.Add(Normalize(name));
        }
        return this;
    }
}

internal enum ZoneFailure
{
    None,
    Bogus,
    ServFail,
    Silent,
    Malformed,
}

internal sealed record ZoneLookup(ZoneRecord[] Records, bool Exists, bool Secure, ZoneFailure Failure, int ExtendedErrorCode, string ExtendedErrorText);
