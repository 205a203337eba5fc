namespace CloudDelivery.TlsRpt;

/// <summary>A "_smtp._tls" TXT record was present but is not a valid TLSRPT record.</summary>
public sealed class TlsRptRecordException(string message) : FormatException(message);

/// <summary>
/// A domain's TLSRPT policy record (RFC 8460 §3): "v=TLSRPTv1; rua=mailto:tls@example.com,https://…",
/// published at "_smtp._tls.&lt;domain&gt;". It names where reports go; a sender that finds none sends none.
/// </summary>
public sealed record TlsRptRecord(IReadOnlyList<Uri> ReportingUris)
{
    private const string Version = "v=TLSRPTv1";

    /// <summary>The mailto: destinations' addresses.</summary>
    public IEnumerable<string> MailtoAddresses => ReportingUris.Where(u => u.Scheme == Uri.UriSchemeMailto).Select(u => Uri.UnescapeDataString(u.OriginalString["mailto:".Length..]).Split('?')[0]);

    /// <summary>The https: destinations.</summary>
    public IEnumerable<Uri> HttpsUris => ReportingUris.Where(u => u.Scheme == Uri.UriSchemeHttps);

    /// <summary>
    /// Picks the record among a name's TXT strings: texts not starting with "v=TLSRPTv1" are other
    /// records and ignored; anything but exactly one left means the domain does not do TLSRPT (RFC 8460 §3).
    /// </summary>
    /// <returns>The record, or null when there is none or more than one.</returns>
    /// <exception cref="TlsRptRecordException">The one TLSRPT record is malformed.</exception>
    public static TlsRptRecord? Select(IEnumerable<string> texts)
    {
        var candidates = texts.Where(t => t.StartsWith(Version, StringComparison.Ordinal) && (t.Length == Version.Length || t[Version.Length] is ';' or ' ' or '\t')).ToList();
        return candidates.Count == 1 ? Parse(candidates[0]) : null;
    }

    /// <summary>Parses one record (RFC 8460 §3 grammar); unknown extension fields are ignored.</summary>
    /// <exception cref="TlsRptRecordException">Missing version or rua, a bad field or URI.</exception>
    public static TlsRptRecord Parse(string text)
    {
        var fields = text.Split(';').Select(f => f.Trim(' ', '\t')).ToList();
        if (fields[0] != Version)
        {
            throw new TlsRptRecordException($"record must start with {Version}");
        }
        if (fields.Count > 1 && fields[^1].Length == 0)
        {
            fields.RemoveAt(fields.Count - 1); // a trailing field-delim is allowed
        }
        List<Uri>? uris = null;
        foreach (var field in fields.Skip(1))
        {
            var eq = field.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new TlsRptRecordException($"field \"{field}\" is not name=value");
            }
            var name = field[..eq];
            var value = field[(eq + 1)..];
            if (name != "rua")
            {
                // tlsrpt-extension: ignored, but it must be well formed.
                if (name.Length > 32 || !char.IsAsciiLetterOrDigit(name[0]) || name.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not ('_' or '-' or '.')) || value.Length == 0 || value.Any(c => c <= ' ' || c > '~' || c == '='))
                {
                    throw new TlsRptRecordException($"malformed extension field \"{field}\"");
                }
                continue;
            }
            if (uris is not null)
            {
                throw new TlsRptRecordException("more than one rua field");
            }
            uris = [];
            foreach (var part in value.Split(',').Select(p => p.Trim(' ', '\t')))
            {
                if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeMailto && uri.Scheme != Uri.UriSchemeHttps))
                {
                    throw new TlsRptRecordException($"rua \"{part}\" is not a mailto: or https: URI (RFC 8460 §3)");
                }
                if (uri.Scheme == Uri.UriSchemeMailto && !part["mailto:".Length..].Contains('@', StringComparison.Ordinal))
                {
                    throw new TlsRptRecordException($"rua \"{part}\" has no address");
                }
                uris.Add(uri);
            }
        }
        return uris is null ? throw new TlsRptRecordException("record has no rua field") : new TlsRptRecord(uris);
    }
}
