using CloudDelivery.Dkim;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// DKIM signing (RFC 6376) as configuration holds it, bound from <see cref="SectionPath"/> by
/// <see cref="CloudDeliveryServices.AddDkimSigning"/>: environment variables like CloudDelivery__Dkim__Keys__0__Domain.
/// Messages whose RFC 5322 From domain has a key here are signed when submitted; others are stored as
/// submitted. No keys, no signing.
/// </summary>
public sealed class DkimOptions
{
    /// <summary>The section this is bound from; also the prefix of its error messages.</summary>
    public const string SectionPath = CloudDeliveryOptions.SectionName + ":Dkim";

    /// <summary>One key per signing domain (CloudDelivery:Dkim:Keys:0:Domain, …:Keys:1:Domain, …).</summary>
    public List<DkimKeyOptions> Keys { get; set; } = [];

    /// <summary>
    /// Comma-separated header fields to sign, replacing the default list
    /// (<see cref="DkimMessageSigner.DefaultHeaders"/>). Must include From.
    /// </summary>
    public string? Headers { get; set; }

    /// <summary>The signer for these settings; null when no keys are configured.</summary>
    /// <exception cref="FormatException">A setting is missing or invalid; the message names it.</exception>
    public DkimMessageSigner? CreateSigner(TimeProvider? time = null)
    {
        if (Keys.Count == 0)
        {
            return null;
        }
        var keys = Keys.Select((key, index) => key.ToKey($"{SectionPath}:Keys:{index}")).ToList();
        string[]? headers = string.IsNullOrWhiteSpace(Headers) ? null : Headers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        try
        {
            return new DkimMessageSigner(keys, headers, time);
        }
        catch (ArgumentException e) when (e.ParamName == "keys")
        {
            throw new FormatException($"{SectionPath}:Keys: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{SectionPath}:Headers: {e.Message}", e);
        }
    }
}

/// <summary>A DKIM key of one domain. Its public key belongs in DNS as TXT at &lt;Selector&gt;._domainkey.&lt;Domain&gt;.</summary>
public sealed class DkimKeyOptions
{
    /// <summary>The signing domain (d=): the From domain of the messages it signs, matched exactly.</summary>
    public string? Domain { get; set; }

    /// <summary>The selector (s=).</summary>
    public string? Selector { get; set; }

    /// <summary>"rsa-sha256" (default) or "ed25519-sha256" (RFC 8463).</summary>
    public string Algorithm { get; set; } = "rsa-sha256";

    /// <summary>
    /// The private key as PEM (PKCS#8 "PRIVATE KEY", or PKCS#1 "RSA PRIVATE KEY"). In Azure this app
    /// setting is a Key Vault reference, <c>@Microsoft.KeyVault(SecretUri=https://…/secrets/dkim-example-com)</c>,
    /// which the platform resolves with the app's managed identity before the app starts, so no key is
    /// kept in plain app settings. Escaped newlines ("\n") are accepted for single-line environments.
    /// </summary>
    public string? PrivateKeyPem { get; set; }

    /// <summary>Path of a PEM file with the private key, instead of <see cref="PrivateKeyPem"/> (containers, <c>serve</c>).</summary>
    public string? PrivateKeyFile { get; set; }

    /// <exception cref="FormatException">A setting is missing or invalid; the message names it.</exception>
    internal DkimKey ToKey(string path)
    {
        if (string.IsNullOrWhiteSpace(Domain))
        {
            throw new FormatException($"{path}:Domain is required");
        }
        if (!CloudDelivery.Addressing.Domain.TryParse(Domain, out _, out var domainError))
        {
            throw new FormatException($"{path}:Domain '{Domain}' is invalid: {domainError}");
        }
        if (string.IsNullOrWhiteSpace(Selector))
        {
            throw new FormatException($"{path}:Selector is required");
        }
        if (!DkimKey.IsValidSelector(Selector.Trim()))
        {
            throw new FormatException($"{path}:Selector '{Selector}' is invalid: letters, digits and hyphens in dot-separated labels (RFC 6376 §3.1)");
        }
        if (!DkimKey.TryParseAlgorithm(Algorithm, out var algorithm))
        {
            throw new FormatException($"{path}:Algorithm '{Algorithm}' is not supported; use rsa-sha256 or ed25519-sha256");
        }
        var (pem, setting) = ReadPem(path);
        try
        {
            return DkimKey.FromPem(Domain, Selector, algorithm, pem);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{path}:{setting} ({Domain}): {e.Message}", e);
        }
    }

    private (string Pem, string Setting) ReadPem(string path)
    {
        var hasPem = !string.IsNullOrWhiteSpace(PrivateKeyPem);
        var hasFile = !string.IsNullOrWhiteSpace(PrivateKeyFile);
        if (hasPem == hasFile)
        {
            throw new FormatException($"{path}: set exactly one of PrivateKeyPem and PrivateKeyFile");
        }
        if (hasFile)
        {
            try
            {
                return (File.ReadAllText(PrivateKeyFile!), "PrivateKeyFile");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw new FormatException($"{path}:PrivateKeyFile {PrivateKeyFile} cannot be read: {e.Message}", e);
            }
        }
        // App Service leaves a reference it could not resolve as the literal text (Key Vault access denied,
        // wrong URI): say so rather than "no private key".
        if (PrivateKeyPem!.TrimStart().StartsWith("@Microsoft.KeyVault(", StringComparison.OrdinalIgnoreCase))
        {
            throw new FormatException($"{path}:PrivateKeyPem is an unresolved Key Vault reference; check the secret URI and the app identity's access to it");
        }
        return (PrivateKeyPem.Replace("\\n", "\n", StringComparison.Ordinal), "PrivateKeyPem");
    }
}

/// <summary>Fails host start-up on bad DKIM settings, rather than at the first submission.</summary>
internal sealed class DkimOptionsValidator : IValidateOptions<DkimOptions>
{
    public ValidateOptionsResult Validate(string? name, DkimOptions options)
    {
        try
        {
            options.CreateSigner();
            return ValidateOptionsResult.Success;
        }
        catch (FormatException e)
        {
            return ValidateOptionsResult.Fail(e.Message);
        }
    }
}
