using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// Webhook request signing as the Standard Webhooks specification (https://www.standardwebhooks.com) lays it
/// out, so receivers can use its libraries: headers <c>webhook-id</c>, <c>webhook-timestamp</c> (Unix
/// seconds) and <c>webhook-signature</c> = <c>v1,</c> + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
/// The key is the base64-decoded part of a <c>whsec_…</c> secret (the specification's form), or the UTF-8
/// bytes of any other secret. The README's receiver snippet does the same; a test keeps the two in step.
/// </summary>
public sealed class WebhookSignature
{
    public const string IdHeader = "webhook-id";

    public const string TimestampHeader = "webhook-timestamp";

    public const string SignatureHeader = "webhook-signature";

    /// <summary>The prefix of a Standard Webhooks secret, whose remainder is the base64 key.</summary>
    public const string SecretPrefix = "whsec_";

    /// <summary>How far a timestamp may be from the receiver's clock: replays older than this are refused.</summary>
    public static readonly TimeSpan DefaultTolerance = TimeSpan.FromMinutes(5);

    private readonly byte[] key;

    /// <exception cref="FormatException"><paramref name="secret"/> is empty, or a <c>whsec_</c> secret is not base64.</exception>
    public WebhookSignature(string secret)
    {
        if (string.IsNullOrWhiteSpace(secret))
        {
            throw new FormatException("the secret is empty");
        }
        if (secret.StartsWith(SecretPrefix, StringComparison.Ordinal))
        {
            try
            {
                key = Convert.FromBase64String(secret[SecretPrefix.Length..]);
            }
            catch (FormatException e)
            {
                throw new FormatException($"a {SecretPrefix} secret must be base64 after the prefix", e);
            }
            if (key.Length == 0)
            {
                throw new FormatException($"the {SecretPrefix} secret holds no key");
            }
        }
        else
        {
            key = Encoding.UTF8.GetBytes(secret);
        }
    }

    /// <summary>The <c>webhook-signature</c> value for <paramref name="body"/> sent as <paramref name="id"/> at <paramref name="unixSeconds"/>.</summary>
    public string Sign(string id, long unixSeconds, ReadOnlySpan<byte> body) =>
        "v1," + Convert.ToBase64String(Mac(id, unixSeconds.ToString(CultureInfo.InvariantCulture), body));

    /// <summary>
    /// Whether <paramref name="signatureHeader"/> (space-separated <c>v1,…</c> values, several during a secret
    /// rotation) holds a valid signature of <paramref name="body"/>, and <paramref name="timestamp"/> is within
    /// <paramref name="tolerance"/> of <paramref name="now"/>. Signatures are compared in constant time.
    /// </summary>
    public bool Verify(string id, string timestamp, string signatureHeader, ReadOnlySpan<byte> body, DateTimeOffset now, TimeSpan? tolerance = null)
    {
        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || Math.Abs(now.ToUnixTimeSeconds() - seconds) > (tolerance ?? DefaultTolerance).TotalSeconds)
        {
            return false;
        }
        var expected = Mac(id, timestamp, body);
        foreach (var candidate in signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!candidate.StartsWith("v1,", StringComparison.Ordinal))
            {
                continue;
            }
            var presented = new byte[expected.Length];
            if (Convert.TryFromBase64String(candidate[3..], presented, out var written)
                && written == expected.Length
                && CryptographicOperations.FixedTimeEquals(presented, expected))
            {
                return true;
            }
        }
        return false;
    }

    private byte[] Mac(string id, string timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes($"{id}.{timestamp}.");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        return HMACSHA256.HashData(key, signed);
    }
}
