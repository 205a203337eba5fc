using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace CloudDelivery.Loopback.Pki;

/// <summary>
/// A throw-away certificate authority for loopback peers: a self-signed root and leaf certificates issued
/// by it for any names, with chosen validity, so tests can present trusted, expired, wrong-name and
/// self-signed certificates over real TLS. Keys are ECDSA P-256: fast to make, accepted everywhere.
/// </summary>
public sealed class TestPki : IDisposable
{
    private TestPki(X509Certificate2 root) => Root = root;

    /// <summary>The root certificate, with its private key.</summary>
    public X509Certificate2 Root { get; }

    /// <summary>
    /// An HTTP handler that trusts this CA only, for clients of the loopback servers its certificates serve.
    /// The host name is not checked: clients dial 127.0.0.1 whatever name the certificate carries.
    /// </summary>
    public HttpClientHandler TrustingHandler()
    {
        var root = Root;
        return new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null || (errors & System.Net.Security.SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
                {
                    return false;
                }
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(root);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate);
            },
        };
    }

    /// <summary>The root certificate as PEM, the form <c>--trust-ca</c> and the engine's extra roots take.</summary>
    public string RootPem => Root.ExportCertificatePem();

    /// <summary>Creates a new root, valid from a year ago (so expired leaves can be issued) for ten years.</summary>
    public static TestPki Create(string commonName = "CloudDelivery Loopback Test CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var root = request.CreateSelfSigned(now.AddYears(-1), now.AddYears(10));
        return new TestPki(root);
    }

    /// <summary>
    /// Issues an intermediate CA certificate (with its key) under the root, for chains like the web's:
    /// root → intermediate → leaf. Servers send intermediates, never the root, so DANE-TA records usually
    /// pin an intermediate.
    /// </summary>
    public X509Certificate2 IssueIntermediate(string commonName = "CloudDelivery Loopback Intermediate CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Root, true, false));
        var now = DateTimeOffset.UtcNow;
        using var issued = request.Create(Root, now.AddDays(-180), now.AddYears(5), RandomSerial());
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Issues a server certificate for <paramref name="dnsNames"/>, valid now unless told otherwise.</summary>
    /// <param name="dnsNames">Subject alternative names: DNS names, and IP literals as IP address names.</param>
    /// <param name="notBefore">Start of validity (default an hour ago).</param>
    /// <param name="notAfter">End of validity (default in 30 days).</param>
    /// <param name="issuer">The issuing CA with its key (default the root).</param>
    public X509Certificate2 Issue(IEnumerable<string> dnsNames, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null, X509Certificate2? issuer = null)
    {
        issuer ??= Root;
        var names = dnsNames.ToArray();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={(names.Length > 0 ? names[0] : "unnamed")}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            // An IP literal is an iPAddress name (RFC 5280 §4.2.1.6), what a client dialing 127.0.0.1 checks.
            if (System.Net.IPAddress.TryParse(name, out var address))
            {
                san.AddIpAddress(address);
            }
            else
            {
                san.AddDnsName(name);
            }
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        var now = DateTimeOffset.UtcNow;
        var from = notBefore ?? now.AddHours(-1);
        var until = notAfter ?? now.AddDays(30);
        using var issued = request.Create(issuer, from, until, RandomSerial());
        // The platform TLS stack wants an exportable key attached; a PFX round trip gives it one.
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Issues a certificate that expired a day ago.</summary>
    public X509Certificate2 IssueExpired(params string[] dnsNames) =>
        Issue(dnsNames, DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1));

    /// <summary>A self-signed certificate for <paramref name="dnsName"/>, trusted by nobody.</summary>
    public static X509Certificate2 SelfSigned(string dnsName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={dnsName}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(dnsName);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>
    /// The certificate association data of a TLSA record for <paramref name="certificate"/>
    /// (RFC 6698 §2.1.2/§2.1.3): selector 0 = full certificate, 1 = SubjectPublicKeyInfo; matching type
    /// 0 = exact, 1 = SHA-256, 2 = SHA-512.
    /// </summary>
    public static byte[] TlsaData(X509Certificate2 certificate, byte selector, byte matchingType)
    {
        var selected = selector == 0 ? certificate.RawData : certificate.PublicKey.ExportSubjectPublicKeyInfo();
        return matchingType switch
        {
            0 => selected,
            1 => SHA256.HashData(selected),
            2 => SHA512.HashData(selected),
            _ => throw new ArgumentOutOfRangeException(nameof(matchingType)),
        };
    }

    private static byte[] RandomSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        return serial;
    }

    public void Dispose() => Root.Dispose();
}
