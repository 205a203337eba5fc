using CloudDelivery.Addressing;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;

namespace CloudDelivery.Dkim;

/// <summary>The signature algorithms we sign with: RFC 6376 §3.3 rsa-sha256 and RFC 8463 ed25519-sha256.</summary>
public enum DkimAlgorithm
{
    RsaSha256,
    Ed25519Sha256,
}

/// <summary>
/// A signing key of one domain: the d= domain, the s= selector and the private key. The public key is
/// published by the domain owner as a TXT record at <c>&lt;selector&gt;._domainkey.&lt;domain&gt;</c>
/// (RFC 6376 §3.6.2.1).
/// </summary>
public sealed class DkimKey
{
    // RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits (2048 is recommended).
    private const int MinimumRsaBits = 1024;

    private DkimKey(Domain domain, string selector, DkimAlgorithm algorithm, AsymmetricKeyParameter privateKey)
    {
        Domain = domain;
        Selector = selector;
        Algorithm = algorithm;
        PrivateKey = privateKey;
    }

    /// <summary>The signing domain (d=), in A-label form.</summary>
    public Domain Domain { get; }

    /// <summary>The selector (s=).</summary>
    public string Selector { get; }

    public DkimAlgorithm Algorithm { get; }

    internal AsymmetricKeyParameter PrivateKey { get; }

    internal DkimSignatureAlgorithm MimeKitAlgorithm =>
        Algorithm == DkimAlgorithm.Ed25519Sha256 ? DkimSignatureAlgorithm.Ed25519Sha256 : DkimSignatureAlgorithm.RsaSha256;

    /// <summary>The RFC 6376 name of <paramref name="algorithm"/>, as in a=.</summary>
    public static string Name(DkimAlgorithm algorithm) => algorithm == DkimAlgorithm.Ed25519Sha256 ? "ed25519-sha256" : "rsa-sha256";

    /// <summary>Parses "rsa-sha256" or "ed25519-sha256" (case-insensitive); rsa-sha1 is refused (RFC 8301 §3.1).</summary>
    public static bool TryParseAlgorithm(string? text, out DkimAlgorithm algorithm)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "rsa-sha256":
                algorithm = DkimAlgorithm.RsaSha256;
                return true;
            case "ed25519-sha256":
                algorithm = DkimAlgorithm.Ed25519Sha256;
                return true;
            default:
                algorithm = default;
                return false;
        }
    }

    /// <summary>
    /// A key from a PEM private key: RSA as PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"), Ed25519
    /// as PKCS#8 ("PRIVATE KEY", as written by <c>openssl genpkey -algorithm ed25519</c>).
    /// </summary>
    /// <exception cref="FormatException">The domain or selector is invalid, the PEM holds no private key, or the key does not suit the algorithm.</exception>
    public static DkimKey FromPem(string domain, string selector, DkimAlgorithm algorithm, string pem)
    {
        if (!Domain.TryParse(domain, out var parsed, out var error))
        {
            throw new FormatException($"invalid DKIM domain: {error}");
        }
        selector = selector?.Trim() ?? string.Empty;
        if (!IsValidSelector(selector))
        {
            throw new FormatException($"invalid DKIM selector '{selector}'");
        }
        AsymmetricKeyParameter key;
        try
        {
            // BouncyCastle's PEM reader, as MimeKit's own DkimSigner uses: PKCS#1 and PKCS#8, RSA and Ed25519.
            using var reader = new StringReader(pem ?? string.Empty);
            key = new Org.BouncyCastle.OpenSsl.PemReader(reader).ReadObject() switch
            {
                AsymmetricCipherKeyPair pair => pair.Private,
                AsymmetricKeyParameter { IsPrivate: true } single => single,
                _ => throw new FormatException("no private key in the PEM text"),
            };
        }
        catch (Exception e) when (e is IOException or InvalidCastException or ArgumentException or Org.BouncyCastle.Security.SecurityUtilityException or Org.BouncyCastle.Asn1.Asn1Exception or Org.BouncyCastle.Crypto.CryptoException)
        {
            throw new FormatException($"no readable private key in the PEM text ({e.Message})", e);
        }
        switch (algorithm, key)
        {
            case (DkimAlgorithm.RsaSha256, RsaKeyParameters rsa):
                if (rsa.Modulus.BitLength < MinimumRsaBits)
                {
                    throw new FormatException($"the RSA key has {rsa.Modulus.BitLength} bits; RFC 8301 requires at least {MinimumRsaBits}");
                }
                break;
            case (DkimAlgorithm.Ed25519Sha256, Ed25519PrivateKeyParameters):
                break;
            default:
                throw new FormatException($"the private key is {KeyKind(key)}, which does not suit {Name(algorithm)}");
        }
        return new DkimKey(parsed, selector, algorithm, key);
    }

    /// <summary>RFC 6376 §3.1: a selector is one or more dot-separated sub-domain labels (letters, digits, hyphens).</summary>
    public static bool IsValidSelector(string? selector) =>
        !string.IsNullOrEmpty(selector) && selector.Split('.').All(label => label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'));

    private static string KeyKind(AsymmetricKeyParameter key) => key switch
    {
        RsaKeyParameters => "an RSA key",
        Ed25519PrivateKeyParameters => "an Ed25519 key",
        _ => $"a {key.GetType().Name}",
    };
}
