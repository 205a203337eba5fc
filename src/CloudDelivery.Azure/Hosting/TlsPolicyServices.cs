using CloudDelivery.Tls;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Azure.Hosting;

/// <summary>Registers the operator's TLS policy table, which the delivery engine picks up (DeliveryServices.RulesOf).</summary>
public static class TlsPolicyServices
{
    /// <summary>
    /// <see cref="OperatorTlsPolicyOptions"/> bound from <paramref name="section"/>, checked at start-up (a
    /// bad entry is one line naming the key and the line), and the <see cref="OperatorTlsPolicies"/> singleton.
    /// </summary>
    public static IServiceCollection AddOperatorTlsPolicies(this IServiceCollection services, IConfigurationSection section)
    {
        services.AddOptions<OperatorTlsPolicyOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<OperatorTlsPolicyOptions>>(new PolicyTableValidator(section.Path));
        services.AddSingleton(p =>
        {
            var (policies, problems) = p.GetRequiredService<IOptions<OperatorTlsPolicyOptions>>().Value.Load(section.Path);
            // The validator ran when the options were created; a file changed in between still fails loudly.
            return policies ?? throw new OptionsValidationException(section.Path, typeof(OperatorTlsPolicyOptions), problems);
        });
        return services;
    }

    private sealed class PolicyTableValidator(string sectionPath) : IValidateOptions<OperatorTlsPolicyOptions>
    {
        public ValidateOptionsResult Validate(string? name, OperatorTlsPolicyOptions options) =>
            options.Load(sectionPath).Problems is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}
