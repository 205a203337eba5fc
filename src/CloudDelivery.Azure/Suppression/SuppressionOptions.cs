using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Suppression;

/// <summary>
/// The suppression list's settings, bound from "CloudDelivery:Suppression" (environment variables like
/// CloudDelivery__Suppression__Scope). The entries themselves live in Storage:SuppressionsTable.
/// </summary>
public sealed class SuppressionOptions
{
    /// <summary>The <see cref="Scope"/> value that puts bounced addresses in the scope of the failed message's sender domain.</summary>
    public const string SenderDomainScope = "sender-domain";

    /// <summary>The <see cref="Scope"/> value that puts bounced addresses in the global scope.</summary>
    public const string GlobalScope = "global";

    /// <summary>Off: bounces add nothing and submissions are not checked (entries stay, the API still works).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Where a bounced address goes: "sender-domain" (the failed message's sender domain) or "global".</summary>
    public string Scope { get; set; } = SenderDomainScope;

    /// <summary>How often the in-memory snapshot takes other instances' changes from the table.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an address added by a bounce stays suppressed; unset: until removed.</summary>
    public TimeSpan? BounceExpiry { get; set; }

    /// <summary>True when bounces go to the global scope.</summary>
    public bool BouncesAreGlobal => string.Equals(Scope, GlobalScope, StringComparison.OrdinalIgnoreCase);
}

/// <summary>Stops the host at start-up on a suppression setting it cannot use, naming it.</summary>
internal sealed class SuppressionOptionsValidator : IValidateOptions<Hosting.CloudDeliveryOptions>
{
    public ValidateOptionsResult Validate(string? name, Hosting.CloudDeliveryOptions options)
    {
        var suppression = options.Suppression;
        var errors = new List<string>();
        if (!string.Equals(suppression.Scope, SuppressionOptions.SenderDomainScope, StringComparison.OrdinalIgnoreCase) && !suppression.BouncesAreGlobal)
        {
            errors.Add($"CloudDelivery:Suppression:Scope '{suppression.Scope}' is not sender-domain or global");
        }
        if (suppression.RefreshInterval < TimeSpan.FromSeconds(1) || suppression.RefreshInterval > TimeSpan.FromHours(1))
        {
            errors.Add($"CloudDelivery:Suppression:RefreshInterval {suppression.RefreshInterval} is not between 1 second and 1 hour");
        }
        if (suppression.BounceExpiry is { } expiry && expiry <= TimeSpan.Zero)
        {
            errors.Add($"CloudDelivery:Suppression:BounceExpiry {expiry} is not positive");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
