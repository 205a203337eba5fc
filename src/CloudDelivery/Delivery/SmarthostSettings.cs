using CloudDelivery.Addressing;

namespace CloudDelivery.Delivery;

/// <summary>
/// A relay to hand mail to instead of the recipients' MX hosts: SMTP submission (RFC 6409, port 587) with
/// STARTTLS, a WebPKI-valid certificate for <see cref="Host"/>, and a login. Azure blocks outbound port 25
/// on most subscriptions, so many deployments need one.
/// </summary>
public sealed class SmarthostSettings
{
    /// <summary>Host name (resolved with the engine's resolver) or IP address.</summary>
    public required string Host { get; init; }

    public int Port { get; init; } = 587;

    public string? UserName { get; init; }

    public string? Password { get; init; }

    /// <summary>Sender domains that use this relay; empty means every sender, and the null sender of DSNs.</summary>
    public IReadOnlyList<string> SenderDomains { get; init; } = [];

    /// <summary>Whether a message from <paramref name="sender"/> goes through this relay.</summary>
    public bool Handles(EmailAddress? sender) =>
        SenderDomains.Count == 0 || (sender?.Domain.Name is { } domain && SenderDomains.Any(d => string.Equals(d.TrimEnd('.'), domain.Ascii, StringComparison.OrdinalIgnoreCase)));
}
