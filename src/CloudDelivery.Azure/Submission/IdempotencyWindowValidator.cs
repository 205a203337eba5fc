using CloudDelivery.Azure.Hosting;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Submission;

/// <summary>
/// Stops start-up on an idempotency window that cannot work: shorter than a minute, a client retrying
/// after a 503's Retry-After could already find its key forgotten and store the message twice.
/// </summary>
internal sealed class IdempotencyWindowValidator : IValidateOptions<CloudDeliveryOptions>
{
    public static readonly TimeSpan Shortest = TimeSpan.FromMinutes(1);

    public static readonly TimeSpan Longest = TimeSpan.FromDays(365);

    public ValidateOptionsResult Validate(string? name, CloudDeliveryOptions options) =>
        options.Queue.IdempotencyWindow < Shortest || options.Queue.IdempotencyWindow > Longest
            ? ValidateOptionsResult.Fail($"{CloudDeliveryOptions.SectionName}:Queue:{nameof(options.Queue.IdempotencyWindow)} {options.Queue.IdempotencyWindow}: expected from {Shortest} to {Longest.Days} days")
            : ValidateOptionsResult.Success;
}
