using System.CommandLine;
using CloudDelivery.Azure.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Cli.Commands;

/// <summary>The service configuration <c>serve</c> and the operator commands share: environment plus --storage or --account, and --set.</summary>
internal sealed class ServiceOptions
{
    public Option<string?> Storage { get; } = new("--storage") { Description = "Storage connection string (default: CloudDelivery__Storage__ConnectionString, else Azurite's UseDevelopmentStorage=true)." };

    /// <summary>
    /// A deployed account by name, signed in as the operator: a connection string cannot exist on an account
    /// with shared keys off (the template's), so Entra ID is the only way in
    /// (https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent).
    /// </summary>
    public Option<string?> Account { get; } = new("--account")
    {
        Description = "Storage account name; signs in with DefaultAzureCredential (az login, environment, managed identity). Needs the Blob, Queue and Table Data Contributor roles.",
        HelpName = "NAME",
    };

    public Option<string[]> Settings { get; } = new("--set") { Description = "Configuration overrides KEY=VALUE, e.g. CloudDelivery:Delivery:Resolver=127.0.0.1:53 (repeatable)." };

    public void AddTo(Command command)
    {
        command.Options.Add(Storage);
        command.Options.Add(Account);
        command.Options.Add(Settings);
        command.Validators.Add(result =>
        {
            if (result.GetResult(Storage) is not null && result.GetResult(Account) is not null)
            {
                result.AddError("--storage and --account name two ways to the same storage: give one");
            }
            if (result.GetValue(Account) is { } name && !IsAccountName(name))
            {
                result.AddError($"--account {name}: a storage account name is 3 to 24 lower-case letters and digits");
            }
        });
    }

    /// <summary>Azure's rule for storage account names (https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftstorage).</summary>
    private static bool IsAccountName(string name) =>
        name.Length is >= 3 and <= 24 && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9'));

    /// <summary>
    /// The configuration overrides of the engine flags of <paramref name="common"/>, of --storage (over an
    /// AccountName from the environment) or --account (over a connection string from the environment) and
    /// of --set (which wins over all).
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
        if (parse.GetValue(Account) is { } account)
        {
            overrides[ConfigurationFlags.StorageAccountName] = account;
            // The operator signs in as themselves: a managed identity named in the environment (a shell set up
            // like the app's settings) must not be picked instead of DefaultAzureCredential.
            overrides[ConfigurationFlags.ManagedIdentityClientId] = string.Empty;
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
