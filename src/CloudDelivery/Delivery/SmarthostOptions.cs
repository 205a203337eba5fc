using CloudDelivery.Addressing;

namespace CloudDelivery.Delivery;

/// <summary>
/// A relay to hand mail to instead of the recipients' MX hosts: SMTP submission (RFC 6409, port 587) with
/// STARTTLS, a WebPKI-valid certificate for <see cref="Host"/>, and a login. Azure blocks outbound port 25
/// on most subscriptions, so many deployments need one. Bound as is from configuration; an empty
/// <see cref="Host"/> means direct delivery. Keep the password in Key Vault (a secret reference).
/// </summary>
public sealed class SmarthostOptions
{
    /// <summary>Host name (resolved with the engine's resolver) or IP address; empty disables the smarthost.</summary>
    public string Host { get; set; } = string.Empty;

    public int Port { get; set; } = 587;

    /// <summary>SASL login; null sends without AUTH (hosts bind an empty value as null).</summary>
    public string? UserName { get; set; }

    public string? Password { get; set; }

    /// <summary>Comma-separated sender domains that use this relay; empty means every sender, and the null sender of DSNs.</summary>
    public string? SenderDomains { get; set; }

    /// <summary>Whether a relay is configured at all.</summary>
    public bool IsEnabled => !string.IsNullOrWhiteSpace(Host);

    /// <summary>The sender domains of <see cref="SenderDomains"/>, one each.</summary>
    public IReadOnlyList<string> SenderDomainList => (SenderDomains ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Whether a message from <paramref name="sender"/> goes through this relay.</summary>
    public bool Handles(EmailAddress? sender)
    {
        var domains = SenderDomainList;
        return domains.Count == 0 || (sender?.Domain.Name is { } domain && domains.Any(d => string.Equals(d.TrimEnd('.'), domain.Ascii, StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>What is wrong with these settings, one line each, naming the key at <paramref name="section"/>.</summary>
    public IEnumerable<string> Problems(string section)
    {
        if (IsEnabled && Port is < 1 or > 65535)
        {
            yield return $"{section}:{nameof(Port)} {Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}: expected a port from 1 to 65535";
        }
    }
}
