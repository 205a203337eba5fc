using System.CommandLine;
using CloudDelivery.Azure.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary>The service configuration <c>serve</c> and the operator commands share: environment plus --storage and --set.</summary>
internal sealed class ServiceOptions
{
    public Option<string?> Storage { get; } = new("--storage") { Description = "Storage connection string (default: CloudDelivery__Storage__ConnectionString, else Azurite's UseDevelopmentStorage=true)." };

    public Option<string[]> Settings { get; } = new("--set") { Description = "Configuration overrides KEY=VALUE, e.g. CloudDelivery:Delivery:Resolver=127.0.0.1:53 (repeatable)." };

    public void AddTo(Command command)
    {
        command.Options.Add(Storage);
        command.Options.Add(Settings);
    }

    /// <summary>
    /// The configuration overrides of the engine flags of <paramref name="common"/>, of --storage (over an
    /// AccountName from the environment) and of --set (which wins over all).
    /// </summary>
    /// <exception cref="FormatException">A --set value is not KEY=VALUE.</exception>
    public Dictionary<string, string?> Overrides(ParseResult parse, CommonOptions? common = null)
    {
        var overrides = common?.Overrides(parse) ?? new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (parse.GetValue(Storage) is { } connectionString)
        {
            overrides[ConfigurationFlags.StorageConnectionString] = connectionString;
            // An account name (token access) would make the connection string ignored: the account the
            // operator named on the command line is the one to talk to, not the environment's.
            overrides[ConfigurationFlags.StorageAccountName] = string.Empty;
        }
        foreach (var setting in parse.GetValue(Settings) ?? [])
        {
            var eq = setting.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new FormatException($"--set {setting}: expected KEY=VALUE");
            }
            overrides[setting[..eq]] = setting[(eq + 1)..];
        }
        return overrides;
    }

    /// <summary>The same services as the hosts, from environment variables under the command's flags (those of <paramref name="common"/> too).</summary>
    /// <exception cref="FormatException">A --set value is not KEY=VALUE.</exception>
    public ServiceProvider Build(ParseResult parse, CommonOptions? common = null)
    {
        var configuration = ConfigurationFlags.Build(common is null ? [] : CommonOptions.Defaults(), Overrides(parse, common));
        var services = new ServiceCollection();
        services.AddCloudDelivery(configuration);
        return services.BuildServiceProvider();
    }
}
