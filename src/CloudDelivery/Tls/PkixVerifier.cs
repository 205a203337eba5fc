using System.Security.Cryptography.X509Certificates;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tls;

// WebPKI ("PKIX") verification as MTA-STS requires it (RFC 8461 §4.2): the server's certificate must chain
// to a trusted root and carry the MX host name. CloudDelivery verifies certificates itself rather than
// letting the TLS stack decide, because one handshake may need DANE and WebPKI checked, both reported to
// TLSRPT, and then enforced, only reported (opportunistic TLS) or ignored (TLS-Required: No).

/// <summary>The outcome of WebPKI verification, with the RFC 8460 result type of a failure.</summary>
/// <param name="Valid">Chain and name are good.</param>
/// <param name="TlsRptResultType">certificate-expired, certificate-host-mismatch, certificate-not-trusted or validation-failure; null when valid.</param>
/// <param name="FailureReasonCode">A short code for TLSRPT's failure-reason-code, empty when there is nothing to add.</param>
/// <param name="Error">A readable reason, null when valid.</param>
public sealed record PkixVerification(bool Valid, string? TlsRptResultType, string FailureReasonCode, string? Error)
{
    public static readonly PkixVerification Success = new(true, null, string.Empty, null);
}

/// <summary>Verifies a server certificate against the system roots and optional extra roots.</summary>
public static class PkixVerifier
{
    /// <summary>
    /// Verifies what a TLS client's validation callback received (HTTPS to an MTA-STS policy host or a
    /// TLSRPT collector), ignoring the platform's own verdict: chain and name are checked here, at <paramref name="now"/>.
    /// </summary>
    public static PkixVerification VerifyPresented(X509Certificate? certificate, X509Chain? chain, string hostName, X509Certificate2Collection? extraRoots, DateTimeOffset now)
    {
        if (certificate is null)
        {
            return new PkixVerification(false, TlsRptResultType.ValidationFailure, "no-certificate", "the server presented no certificate");
        }
        var presented = PresentedCertificates.From(certificate, chain);
        return Verify(presented[0], presented, hostName, extraRoots, now);
    }

    /// <summary>
    /// Verifies <paramref name="leaf"/> for <paramref name="hostName"/> at <paramref name="now"/>, using the
    /// certificates the server presented as intermediates. Revocation is not checked: there is no reliable
    /// way to do it from an MTA, and neither RFC 8461 nor RFC 7672 asks for it.
    /// </summary>
    public static PkixVerification Verify(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, string hostName, X509Certificate2Collection? extraRoots, DateTimeOffset now)
    {
        var chainResult = BuildChain(leaf, presented, now, extraRoots: null);
        if (!chainResult.Valid && extraRoots is { Count: > 0 })
        {
            chainResult = BuildChain(leaf, presented, now, extraRoots);
        }
        if (!chainResult.Valid)
        {
            return chainResult;
        }
        // RFC 6125 §6.4: DNS-ID with a wildcard only as the complete leftmost label; the CN only without SANs.
        if (!leaf.MatchesHostname(hostName, allowWildcards: true, allowCommonName: true))
        {
            return new PkixVerification(false, TlsRptResultType.CertificateHostMismatch, string.Empty, $"certificate is not for {hostName} (subject {leaf.Subject})");
        }
        return PkixVerification.Success;
    }

    /// <summary>
    /// Verifies <paramref name="leaf"/> like <see cref="Verify"/>, for any of <paramref name="expectedNames"/>
    /// rather than one host name: the operator's verify policy with match= (as Postfix's "match"
    /// attribute). A name is matched as RFC 6125 §6.4 says; a ".suffix" pattern accepts any DNS-ID (or,
    /// without SANs, the CN) under the suffix.
    /// </summary>
    public static PkixVerification VerifyForAny(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, IReadOnlyList<string> expectedNames, X509Certificate2Collection? extraRoots, DateTimeOffset now)
    {
        var chainResult = BuildChain(leaf, presented, now, extraRoots: null);
        if (!chainResult.Valid && extraRoots is { Count: > 0 })
        {
            chainResult = BuildChain(leaf, presented, now, extraRoots);
        }
        if (!chainResult.Valid)
        {
            return chainResult;
        }
        var certificateNames = CertificateDnsNames(leaf);
        foreach (var expected in expectedNames)
        {
            var matches = expected.StartsWith('.')
                ? certificateNames.Any(n => n.Length > expected.Length && n.EndsWith(expected, StringComparison.OrdinalIgnoreCase))
                : leaf.MatchesHostname(expected, allowWildcards: true, allowCommonName: true);
            if (matches)
            {
                return PkixVerification.Success;
            }
        }
        return new PkixVerification(false, TlsRptResultType.CertificateHostMismatch, string.Empty, $"certificate is not for {string.Join(" or ", expectedNames)} (subject {leaf.Subject})");
    }

    /// <summary>The certificate's DNS-IDs, or its CN when it has no subjectAltName (RFC 6125 §6.4.4).</summary>
    private static IReadOnlyList<string> CertificateDnsNames(X509Certificate2 leaf)
    {
        foreach (var extension in leaf.Extensions)
        {
            if (extension is X509SubjectAlternativeNameExtension san)
            {
                return [.. san.EnumerateDnsNames()];
            }
        }
        var commonName = leaf.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        return string.IsNullOrEmpty(commonName) ? [] : [commonName];
    }

    private static PkixVerification BuildChain(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, DateTimeOffset now, X509Certificate2Collection? extraRoots)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        foreach (var certificate in presented)
        {
            if (!certificate.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span))
            {
                chain.ChainPolicy.ExtraStore.Add(certificate);
            }
        }
        if (extraRoots is not null)
        {
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(extraRoots);
        }
        if (chain.Build(leaf))
        {
            return PkixVerification.Success;
        }
        var flags = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (all, s) => all | s.Status);
        var text = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
        if ((flags & X509ChainStatusFlags.NotTimeValid) != 0)
        {
            return new PkixVerification(false, TlsRptResultType.CertificateExpired, string.Empty, $"certificate is not valid at {now:u}: {text}");
        }
        if ((flags & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0)
        {
            return new PkixVerification(false, TlsRptResultType.CertificateNotTrusted, string.Empty, $"certificate does not chain to a trusted root: {text}");
        }
        var reason = (flags & X509ChainStatusFlags.NotValidForUsage) != 0 ? "incompatible-key-usage"
            : (flags & X509ChainStatusFlags.NotSignatureValid) != 0 ? "bad-signature"
            : (flags & X509ChainStatusFlags.InvalidBasicConstraints) != 0 ? "not-authorized-to-sign"
            : (flags & (X509ChainStatusFlags.HasNotPermittedNameConstraint | X509ChainStatusFlags.HasExcludedNameConstraint)) != 0 ? "ca-not-authorized-for-this-name"
            : "chain-invalid";
        return new PkixVerification(false, TlsRptResultType.ValidationFailure, reason, $"certificate chain is invalid: {text}");
    }
}

/// <summary>The certificates a TLS server presented, as .NET's validation callback hands them over.</summary>
public static class PresentedCertificates
{
    /// <summary>
    /// The leaf first, then the other certificates the server sent (found in the callback chain's extra
    /// store) and those the platform placed in the chain, without duplicates.
    /// </summary>
    public static IReadOnlyList<X509Certificate2> From(X509Certificate leaf, X509Chain? chain)
    {
        var leaf2 = leaf as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(leaf.GetRawCertData());
        var list = new List<X509Certificate2> { leaf2 };
        if (chain is not null)
        {
            foreach (var certificate in chain.ChainPolicy.ExtraStore)
            {
                Add(certificate);
            }
            foreach (var element in chain.ChainElements)
            {
                Add(element.Certificate);
            }
        }
        return list;

        void Add(X509Certificate2 certificate)
        {
            if (!list.Any(c => c.RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span)))
            {
                list.Add(certificate);
            }
        }
    }
}
