using CloudDelivery.Delivery;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Hosting;

/// <summary>
/// Bounce classification as configuration holds it, bound from <see cref="SectionPath"/> by
/// <see cref="BounceClassificationServices.AddBounceClassification"/>. Without a rules file the shipped rules
/// apply (src/CloudDelivery/Delivery/bounce-rules.json); an operator's rules are checked before them.
/// </summary>
public sealed class BounceOptions
{
    /// <summary>The section this is bound from; also the prefix of its error messages.</summary>
    public const string SectionPath = CloudDeliveryOptions.SectionName + ":Bounces";

    /// <summary>
    /// Path of a JSON file of the operator's bounce rules, in the shipped file's format: checked first, so
    /// a rule here overrides a shipped one. Empty: the shipped rules only.
    /// </summary>
    public string? RulesFile { get; set; }

    /// <summary>The classifier for these settings: the operator's rules, then the shipped ones.</summary>
    /// <exception cref="FormatException">The file cannot be read or a rule is malformed; the message names the key and the rule's position.</exception>
    public BounceClassifier CreateClassifier()
    {
        if (string.IsNullOrWhiteSpace(RulesFile))
        {
            return BounceClassifier.Default;
        }
        string json;
        try
        {
            json = File.ReadAllText(RulesFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new FormatException($"{SectionPath}:{nameof(RulesFile)}: cannot read {RulesFile}: {e.Message}", e);
        }
        try
        {
            return BounceClassifier.WithOperatorRules(BounceRules.Parse(json));
        }
        catch (FormatException e)
        {
            throw new FormatException($"{SectionPath}:{nameof(RulesFile)}: {RulesFile}: {e.Message}", e);
        }
    }
}

/// <summary>Registers the configured <see cref="BounceClassifier"/>, which the engine, the queue and telemetry use.</summary>
public static class BounceClassificationServices
{
    /// <summary>
    /// <see cref="BounceOptions"/> bound from <paramref name="bounces"/>, checked at start-up (an unreadable
    /// or malformed rules file stops the host with one line naming the key and the rule), and the
    /// <see cref="BounceClassifier"/> singleton built from it.
    /// </summary>
    public static IServiceCollection AddBounceClassification(this IServiceCollection services, IConfigurationSection bounces)
    {
        services.AddOptions<BounceOptions>().Bind(bounces).ValidateOnStart();
        services.AddSingleton<IValidateOptions<BounceOptions>, BounceOptionsValidator>();
        services.AddSingleton(p => p.GetRequiredService<IOptions<BounceOptions>>().Value.CreateClassifier());
        return services;
    }

    private sealed class BounceOptionsValidator : IValidateOptions<BounceOptions>
    {
        public ValidateOptionsResult Validate(string? name, BounceOptions options)
        {
            try
            {
                options.CreateClassifier();
                return ValidateOptionsResult.Success;
            }
            catch (FormatException e)
            {
                return ValidateOptionsResult.Fail(e.Message);
            }
        }
    }
}
