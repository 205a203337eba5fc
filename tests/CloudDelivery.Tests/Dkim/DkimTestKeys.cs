using System.Security.Cryptography;
using CloudDelivery.Dkim;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;

namespace CloudDelivery.Tests.Dkim;

/// <summary>A freshly generated DKIM key pair: the PEM the signer is configured with and the public half a verifier uses.</summary>
public sealed record DkimTestKey(string Domain, string Selector, DkimAlgorithm Algorithm, string PrivateKeyPem, AsymmetricKeyParameter PublicKey)
{
    public static DkimTestKey Rsa(string domain, string selector = "rsa1")
    {
        using var rsa = RSA.Create(2048);
        return new(domain, selector, DkimAlgorithm.RsaSha256, rsa.ExportPkcs8PrivateKeyPem(), PublicKeyFactory.CreateKey(rsa.ExportSubjectPublicKeyInfo()));
    }

    public static DkimTestKey Ed25519(string domain, string selector = "ed1")
    {
        var generator = new Ed25519KeyPairGenerator();
        generator.Init(new Ed25519KeyGenerationParameters(new SecureRandom()));
        var pair = generator.GenerateKeyPair();
        var der = PrivateKeyInfoFactory.CreatePrivateKeyInfo(pair.Private).GetDerEncoded();
        return new(domain, selector, DkimAlgorithm.Ed25519Sha256, new string(PemEncoding.Write("PRIVATE KEY", der)), pair.Public);
    }

    public DkimKey ToKey() => DkimKey.FromPem(Domain, Selector, Algorithm, PrivateKeyPem);

    /// <summary>
    /// Verifies the first DKIM-Signature of <paramref name="message"/> as a receiver would, with the public
    /// key of whichever of <paramref name="keys"/> matches its d= and s=.
    /// </summary>
    public static async Task<bool> VerifyAsync(byte[] message, params DkimTestKey[] keys)
    {
        var parsed = MimeMessage.Load(new MemoryStream(message));
        var index = parsed.Headers.IndexOf(HeaderId.DkimSignature);
        Assert.True(index >= 0, "the message has no DKIM-Signature");
        return await new DkimVerifier(new FixedKeyLocator(keys)).VerifyAsync(parsed, parsed.Headers[index]);
    }

    /// <summary>The tags of the first DKIM-Signature (RFC 6376 §3.2 tag=value list), whitespace removed.</summary>
    public static Dictionary<string, string> Tags(byte[] message)
    {
        var parsed = MimeMessage.Load(new MemoryStream(message));
        var value = parsed.Headers[HeaderId.DkimSignature] ?? throw new InvalidOperationException("no DKIM-Signature");
        return value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => t.Split('=', 2))
            .ToDictionary(t => t[0], t => string.Concat(t[1].Where(c => !char.IsWhiteSpace(c))), StringComparer.Ordinal);
    }

    /// <summary>Stands in for the DNS lookup of selector._domainkey.domain (RFC 6376 §3.6.2.2).</summary>
    private sealed class FixedKeyLocator(DkimTestKey[] keys) : DkimPublicKeyLocatorBase
    {
        public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            keys.FirstOrDefault(k => string.Equals(k.Domain, domain, StringComparison.OrdinalIgnoreCase) && k.Selector == selector)?.PublicKey
            ?? throw new InvalidOperationException($"no test key for {selector}._domainkey.{domain}");

        public override Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromResult(LocatePublicKey(methods, domain, selector, cancellationToken));
    }
}
