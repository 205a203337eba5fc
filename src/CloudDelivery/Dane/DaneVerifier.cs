using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Dns;

namespace CloudDelivery.Dane;

// DANE for SMTP (RFC 7672, on RFC 6698): a receiving domain whose DNS is DNSSEC-signed publishes TLSA
// records at _25._tcp.<mx-host> that pin the MX's certificate or key (DANE-EE, usage 3) or a trust anchor
// that issued it (DANE-TA, usage 2). Because the records are signed, a sender that finds them must use TLS
// and the certificate must match: a man in the middle can no longer strip STARTTLS or present another
// certificate. This folder decides which records are usable and whether a certificate matches them; the
// engine decides when DANE applies (only with DNSSEC-authentic MX, address and TLSA answers).

/// <summary>TLSA record selection for SMTP.</summary>
public static class DaneTlsaRecords
{
    private const byte UsageDaneTa = 2;
    private const byte UsageDaneEe = 3;

    /// <summary>
    /// The records SMTP clients can use (RFC 7672 §3.1): usage DANE-TA(2) or DANE-EE(3), selector Cert(0)
    /// or SPKI(1), matching type Full(0), SHA2-256(1) or SHA2-512(2), with data of the right size (digests)
    /// or that parses (full certificates and keys). PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP
    /// (RFC 7672 §3.1.3): there is no agreed set of CAs for MX hosts.
    /// </summary>
    public static IReadOnlyList<TlsaRecord> Usable(IEnumerable<TlsaRecord> records) => records.Where(IsUsable).ToArray();

    /// <summary>The records in presentation form ("3 1 1 ab12..."), sorted, for TLSRPT's policy-string.</summary>
    public static IReadOnlyList<string> PolicyStrings(IEnumerable<TlsaRecord> records) =>
        records.Select(r => r.ToString()).Order(StringComparer.Ordinal).ToArray();

    private static bool IsUsable(TlsaRecord record)
    {
        if (record.Usage is not (UsageDaneTa or UsageDaneEe) || record.Selector > 1)
        {
            return false;
        }
        return record.MatchingType switch
        {
            0 => ParsesAs(record),
            1 => record.Data.Length == SHA256.HashSizeInBytes,
            2 => record.Data.Length == SHA512.HashSizeInBytes,
            _ => false,
        };
    }

    private static bool ParsesAs(TlsaRecord record)
    {
        try
        {
            if (record.Selector == 0)
            {
                using var certificate = X509CertificateLoader.LoadCertificate(record.Data);
            }
            else
            {
                PublicKey.CreateFromSubjectPublicKeyInfo(record.Data, out _);
            }
            return true;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    internal static bool Matches(TlsaRecord record, X509Certificate2 certificate)
    {
        var selected = record.Selector == 0 ? certificate.RawData : certificate.PublicKey.ExportSubjectPublicKeyInfo();
        var data = record.MatchingType switch
        {
            0 => selected,
            1 => SHA256.HashData(selected),
            2 => SHA512.HashData(selected),
            _ => null,
        };
        return data is not null && CryptographicOperations.FixedTimeEquals(data, record.Data);
    }
}

/// <summary>The outcome of DANE verification.</summary>
/// <param name="Verified">Some record matched under its usage's rules.</param>
/// <param name="MatchedRecord">The record that verified the certificate.</param>
/// <param name="Error">Why a DANE-TA candidate failed (chain, expiry, name), if one did.</param>
/// <param name="HadErrors">Some record could not be evaluated cleanly (TLSRPT reason "+errors").</param>
public sealed record DaneVerification(bool Verified, TlsaRecord? MatchedRecord, string? Error, bool HadErrors);

/// <summary>Checks a server certificate against usable TLSA records (RFC 7672 §3.1).</summary>
public static class DaneVerifier
{
    /// <summary>
    /// Verifies <paramref name="leaf"/> and the certificates the server presented against
    /// <paramref name="usableRecords"/>. DANE-EE matches the leaf alone and ignores names and validity
    /// dates (RFC 7672 §3.1.1). DANE-TA needs a presented certificate matching the record, a valid chain
    /// from the leaf to it at <paramref name="now"/>, and a leaf name among <paramref name="allowedNames"/>
    /// (RFC 7672 §3.2.2).
    /// </summary>
    public static DaneVerification Verify(IReadOnlyList<TlsaRecord> usableRecords, X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, IReadOnlyList<string> allowedNames, DateTimeOffset now)
    {
        string? error = null;
        var hadErrors = false;
        foreach (var record in usableRecords.Where(r => r.Usage == 3))
        {
            if (DaneTlsaRecords.Matches(record, leaf))
            {
                return new DaneVerification(true, record, null, false);
            }
        }
        foreach (var record in usableRecords.Where(r => r.Usage == 2))
        {
            foreach (var anchor in presented.Where(c => DaneTlsaRecords.Matches(record, c)))
            {
                var failure = VerifyChainToAnchor(leaf, presented, anchor, now) ?? VerifyName(leaf, allowedNames);
                if (failure is null)
                {
                    return new DaneVerification(true, record, null, false);
                }
                error = failure;
                hadErrors = true;
            }
        }
        return new DaneVerification(false, null, error, hadErrors);
    }

    private static string? VerifyChainToAnchor(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, X509Certificate2 anchor, DateTimeOffset now)
    {
        if (anchor.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span))
        {
            // The leaf itself as trust anchor: like DANE-EE, but its dates still count (RFC 7672 §3.1.2).
            return now >= leaf.NotBefore && now <= leaf.NotAfter ? null : "certificate is expired or not yet valid";
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        // The anchor from DNS is the only trust: system roots play no part in DANE-TA.
        chain.ChainPolicy.CustomTrustStore.Add(anchor);
        foreach (var certificate in presented)
        {
            chain.ChainPolicy.ExtraStore.Add(certificate);
        }
        if (chain.Build(leaf))
        {
            return null;
        }
        // A DANE-TA anchor need not be self-signed (RFC 7671 §5.2.2), while the platform only accepts
        // self-signed custom roots and calls a chain ending at an intermediate "partial". That is a success
        // here when partiality is the only complaint and the chain ends at the pinned anchor.
        var complaints = chain.ChainElements.Aggregate(X509ChainStatusFlags.NoError, (all, e) => all | e.ChainElementStatus.Aggregate(X509ChainStatusFlags.NoError, (f, s) => f | s.Status))
            | chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (f, s) => f | s.Status);
        var last = chain.ChainElements.Count > 0 ? chain.ChainElements[^1].Certificate : null;
        if ((complaints & ~X509ChainStatusFlags.PartialChain) == X509ChainStatusFlags.NoError && last is not null && last.RawDataMemory.Span.SequenceEqual(anchor.RawDataMemory.Span))
        {
            return null;
        }
        return "chain to the DANE-TA trust anchor is invalid: " + string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct());
    }

    private static string? VerifyName(X509Certificate2 leaf, IReadOnlyList<string> allowedNames) =>
        allowedNames.Any(name => leaf.MatchesHostname(name, allowWildcards: true, allowCommonName: true))
            ? null
            : $"certificate names do not include any of {string.Join(", ", allowedNames)}";
}
