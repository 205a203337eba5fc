using System.Globalization;

namespace CloudDelivery.Loopback.Dns;

/// <summary>One resource record in zone-file terms: an absolute owner name, a type ("MX") and its data as text.</summary>
public sealed record SignedZoneRecord(string Owner, string Type, string Data);

/// <summary>
/// A zone signed for real (RFC 4033–4035) by Debian's ldns tools: a fresh ECDSA P-256 key (algorithm 13,
/// RFC 6605) that signs every RRset and the DNSKEY set (a combined signing key), NSEC for denial. The DS of
/// the key is what a resolver takes as trust anchor for the zone.
/// </summary>
/// <remarks>
/// The signed file can be spoiled afterwards, as an attacker on the path or a broken signer would:
/// <see cref="ChangeRecordData"/> leaves the signature over the old data (the RRset is "bogus",
/// RFC 4035 §5.5) and <see cref="RemoveSignatures"/> strips it (RFC 4035 §5.3: a signed zone's RRset
/// without RRSIG is bogus, not insecure).
/// </remarks>
public sealed class SignedZone
{
    private const string Algorithm = "ECDSAP256SHA256";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private SignedZone(string origin, string filePath, string delegationSigner)
    {
        Origin = origin;
        FilePath = filePath;
        DelegationSigner = delegationSigner;
    }

    /// <summary>The zone's apex, absolute ("dnssec.test.").</summary>
    public string Origin { get; }

    /// <summary>The signed zone file, in the form nsd loads.</summary>
    public string FilePath { get; }

    /// <summary>The DS record of the zone's key in presentation form ("dnssec.test. IN DS 4711 13 2 …"), RFC 4034 §5.3.</summary>
    public string DelegationSigner { get; }

    /// <summary>
    /// Writes the zone (SOA, NS and <paramref name="records"/>) into <paramref name="directory"/>, creates
    /// a key and signs it, valid from an hour ago (resolver clocks differ) for a week.
    /// </summary>
    public static async Task<SignedZone> SignAsync(string origin, IEnumerable<SignedZoneRecord> records, string directory)
    {
        origin = Absolute(origin);
        var keygen = DnsPrograms.LdnsKeygen;
        var signzone = DnsPrograms.LdnsSignzone;
        var name = origin.TrimEnd('.');
        var unsigned = Path.Combine(directory, $"{name}.zone");
        var lines = new List<string>
        {
            $"{origin} 300 IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 300",
            $"{origin} 300 IN NS ns.{origin}",
            $"ns.{origin} 300 IN A 127.0.0.1",
        };
        lines.AddRange(records.Select(r => $"{Absolute(r.Owner)} 300 IN {r.Type} {r.Data}"));
        await File.WriteAllLinesAsync(unsigned, lines);

        // -k: the key signs the DNSKEY set (flags 257, SEP); being the only key it signs everything else too.
        var keyBase = (await DnsPrograms.RunAsync(keygen, ["-a", Algorithm, "-k", origin], directory, Timeout)).Trim();
        var signed = Path.Combine(directory, $"{name}.zone.signed");
        var now = DateTime.UtcNow;
        await DnsPrograms.RunAsync(
            signzone,
            ["-i", Stamp(now.AddHours(-1)), "-e", Stamp(now.AddDays(7)), "-f", signed, unsigned, keyBase],
            directory,
            Timeout);
        var ds = (await File.ReadAllTextAsync(Path.Combine(directory, keyBase + ".ds"))).Trim();
        return new SignedZone(origin, signed, string.Join(' ', ds.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries)));
    }

    /// <summary>Replaces the data of the one <paramref name="type"/> record at <paramref name="owner"/>, keeping its (now wrong) signature.</summary>
    public void ChangeRecordData(string owner, string type, string newData)
    {
        var lines = File.ReadAllLines(FilePath);
        var matches = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var fields = Fields(lines[i]);
            if (fields is not null && Is(fields, owner, type))
            {
                lines[i] = $"{fields[0]}\t{fields[1]}\t{fields[2]}\t{fields[3]}\t{newData}";
                matches++;
            }
        }
        if (matches != 1)
        {
            throw new InvalidOperationException($"{matches} {type} records at {owner} in {FilePath}, expected one");
        }
        File.WriteAllLines(FilePath, lines);
    }

    /// <summary>Removes the RRSIG records that cover the <paramref name="type"/> RRset at <paramref name="owner"/>.</summary>
    public void RemoveSignatures(string owner, string type)
    {
        var lines = File.ReadAllLines(FilePath);
        var kept = lines.Where(line => Fields(line) is not { } fields || !(Is(fields, owner, "RRSIG") && fields.Length > 4 && string.Equals(fields[4], type, StringComparison.OrdinalIgnoreCase))).ToArray();
        if (kept.Length == lines.Length)
        {
            throw new InvalidOperationException($"no RRSIG over {type} at {owner} in {FilePath}");
        }
        File.WriteAllLines(FilePath, kept);
    }

    // ldns-signzone writes one record per line: owner, TTL, class, type, data.
    private static string[]? Fields(string line)
    {
        if (line.Length == 0 || line[0] == ';')
        {
            return null;
        }
        var fields = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        return fields.Length >= 4 ? fields : null;
    }

    private static bool Is(string[] fields, string owner, string type) =>
        string.Equals(fields[0], Absolute(owner), StringComparison.OrdinalIgnoreCase) && string.Equals(fields[3], type, StringComparison.OrdinalIgnoreCase);

    private static string Absolute(string name) => name.EndsWith('.') ? name : name + ".";

    // RRSIG times in the YYYYMMDDHHmmSS form (RFC 4034 §3.2), which ldns-signzone takes.
    private static string Stamp(DateTime utc) => utc.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture);
}
