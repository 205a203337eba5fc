using CloudDelivery.Azure.Hosting;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// How recipient events are built and dispatched, bound from <see cref="SectionPath"/> (environment
/// variables like CloudDelivery__Events__Retention). The sinks themselves (Event Grid, webhooks) are
/// configured in the EventGrid and Webhooks subsections of the same section; with no sink configured no
/// event is written at all.
/// </summary>
public sealed class EventOptions
{
    /// <summary>The section this is bound from; also the prefix of its error messages.</summary>
    public const string SectionPath = CloudDeliveryOptions.SectionName + ":Events";

    /// <summary>Whether events carry the recipient's address; false puts <c>recipientHash</c> in its place.</summary>
    public bool IncludeAddresses { get; set; } = true;

    /// <summary>The salt of <c>recipientHash</c> (required, at least 16 characters, when <see cref="IncludeAddresses"/> is false).</summary>
    public string? AddressSalt { get; set; }

    /// <summary>How long a sink that keeps failing is retried before its events are parked.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How often the outbox is searched for events no dispatcher holds (a crash, another instance's leftovers).</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The sweep takes only events older than this: younger ones are still in their writer's hands.</summary>
    public TimeSpan AdoptAfter { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a published event's outbox row waits before it is deleted, so the deletes of a partition
    /// (a message's queued and delivered events, a burst's events) share one transaction.
    /// </summary>
    public TimeSpan DeleteDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The first wait after a sink failed; it doubles with each further failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Events a dispatcher holds in memory at most. Beyond it new events stay in the outbox only and the
    /// sweep brings them in later: memory stays bounded while a sink is down.
    /// </summary>
    public int MaxInMemory { get; set; } = 20_000;
}

/// <summary>Fails host start-up on unusable event settings, naming the setting.</summary>
public sealed class EventOptionsValidator : IValidateOptions<EventOptions>
{
    public ValidateOptionsResult Validate(string? name, EventOptions options)
    {
        var problems = new List<string>();
        if (!options.IncludeAddresses && (options.AddressSalt?.Length ?? 0) < 16)
        {
            problems.Add($"{EventOptions.SectionPath}:AddressSalt must be at least 16 characters when {EventOptions.SectionPath}:IncludeAddresses is false");
        }
        Positive(options.Retention, nameof(EventOptions.Retention));
        Positive(options.SweepInterval, nameof(EventOptions.SweepInterval));
        Positive(options.InitialBackoff, nameof(EventOptions.InitialBackoff));
        if (options.AdoptAfter < TimeSpan.Zero)
        {
            problems.Add($"{EventOptions.SectionPath}:AdoptAfter must not be negative");
        }
        if (options.DeleteDelay < TimeSpan.Zero)
        {
            problems.Add($"{EventOptions.SectionPath}:DeleteDelay must not be negative");
        }
        if (options.MaxBackoff < options.InitialBackoff)
        {
            problems.Add($"{EventOptions.SectionPath}:MaxBackoff must be at least InitialBackoff");
        }
        if (options.MaxInMemory < 1)
        {
            problems.Add($"{EventOptions.SectionPath}:MaxInMemory must be at least 1");
        }
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);

        void Positive(TimeSpan value, string setting)
        {
            if (value <= TimeSpan.Zero)
            {
                problems.Add($"{EventOptions.SectionPath}:{setting} must be positive");
            }
        }
    }
}
