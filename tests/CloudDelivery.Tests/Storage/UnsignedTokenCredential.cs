using System.Text.Json;
using Azure.Core;

namespace CloudDelivery.Tests.Storage;

/// <summary>
/// A token credential that mints unsigned JWTs shaped like Entra ID access tokens for Azure Storage
/// (issuer https://sts.windows.net/{tenant}/, audience https://storage.azure.com), and records the scopes
/// it was asked for. Good for Azurite's "--oauth basic", useless against Azure.
/// </summary>
public sealed class UnsignedTokenCredential(TimeSpan lifetime) : TokenCredential
{
    private readonly List<string> scopes = [];

    /// <summary>A credential whose tokens are valid for an hour.</summary>
    public UnsignedTokenCredential()
        : this(TimeSpan.FromHours(1))
    {
    }

    public IReadOnlyList<string> RequestedScopes
    {
        get
        {
            lock (scopes)
            {
                return [.. scopes];
            }
        }
    }

    public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
    {
        lock (scopes)
        {
            scopes.AddRange(requestContext.Scopes);
        }
        var now = DateTimeOffset.UtcNow;
        var expires = now + lifetime;
        var header = new { alg = "RS256", typ = "JWT" };
        var payload = new Dictionary<string, object>
        {
            ["aud"] = "https://storage.azure.com",
            ["iss"] = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
            ["iat"] = now.AddMinutes(-5).ToUnixTimeSeconds(),
            ["nbf"] = now.AddMinutes(-5).ToUnixTimeSeconds(),
            ["exp"] = expires.ToUnixTimeSeconds(),
            ["oid"] = "00000000-0000-0000-0000-000000000002",
            ["tid"] = "00000000-0000-0000-0000-000000000001",
        };
        var token = $"{Base64Url(JsonSerializer.SerializeToUtf8Bytes(header))}.{Base64Url(JsonSerializer.SerializeToUtf8Bytes(payload))}.{Base64Url("unsigned"u8.ToArray())}";
        return new AccessToken(token, expires);
    }

    public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
        ValueTask.FromResult(GetToken(requestContext, cancellationToken));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
