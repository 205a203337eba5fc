using System.CommandLine;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Cli.Commands;
using Microsoft.Extensions.Configuration;

namespace CloudDelivery.Tests.Cli;

/// <summary>The operator commands' --storage and --set over the environment's settings.</summary>
public class ServiceOptionsTests
{
    private static CloudDeliveryOptions Bind(Dictionary<string, string?> environment, params string[] args)
    {
        var service = new ServiceOptions();
        var command = new Command("test");
        service.AddTo(command);
        var parse = command.Parse(args);
        Assert.Empty(parse.Errors);
        // As ServiceOptions.Build: the environment first, the command's overrides over it.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(environment).AddInMemoryCollection(service.Overrides(parse)).Build();
        return configuration.GetSection(CloudDeliveryOptions.SectionName).Get<CloudDeliveryOptions>()!;
    }

    [Fact]
    public void An_explicit_storage_connection_string_wins_over_an_account_name_in_the_environment()
    {
        // The operator's shell is set up for the deployed account, as the README's Operating section says.
        var environment = new Dictionary<string, string?> { ["CloudDelivery:Storage:AccountName"] = "productionaccount" };

        var local = Bind(environment, "--storage", "UseDevelopmentStorage=true");
        Assert.False(local.Storage.UsesTokenCredential);
        Assert.Equal("UseDevelopmentStorage=true", local.Storage.ConnectionString);

        Assert.True(Bind(environment).Storage.UsesTokenCredential);
        // A --set of the account name is as explicit, and comes after.
        Assert.True(Bind(environment, "--storage", "UseDevelopmentStorage=true", "--set", "CloudDelivery:Storage:AccountName=other").Storage.UsesTokenCredential);
    }

    [Fact]
    public void An_account_name_signs_in_as_the_operator_over_a_connection_string_and_identity_in_the_environment()
    {
        // A shell set up like the app's settings: a connection string and a managed identity.
        var environment = new Dictionary<string, string?>
        {
            ["CloudDelivery:Storage:ConnectionString"] = "UseDevelopmentStorage=true",
            ["CloudDelivery:ManagedIdentityClientId"] = "11111111-2222-3333-4444-555555555555",
        };

        var deployed = Bind(environment, "--account", "stclouddelivery");

        Assert.True(deployed.Storage.UsesTokenCredential);
        Assert.Equal("stclouddelivery", deployed.Storage.AccountName);
        Assert.True(string.IsNullOrEmpty(deployed.ManagedIdentityClientId), "the operator's own sign-in, not the app's identity");
        var storage = new CloudDelivery.Azure.Storage.OutboundStorage(deployed.Storage, credential: new CloudDelivery.Tests.Storage.UnsignedTokenCredential());
        Assert.Equal(new Uri("https://stclouddelivery.queue.core.windows.net/cd-wakeups"), storage.WakeUps.Uri);
        Assert.Equal("stclouddelivery", storage.Recipients.AccountName);
        Assert.Equal("stclouddelivery", storage.Bodies.AccountName);
    }

    [Theory]
    [InlineData("--storage and --account", "--storage", "UseDevelopmentStorage=true", "--account", "stclouddelivery")]
    [InlineData("--account Prod_Account", "--account", "Prod_Account")]
    [InlineData("--account st", "--account", "st")]
    public void Storage_and_account_exclude_each_other_and_an_account_name_follows_azures_rule(string expected, params string[] args)
    {
        var service = new ServiceOptions();
        var command = new Command("test");
        service.AddTo(command);

        var error = Assert.Single(command.Parse(args).Errors);

        Assert.StartsWith(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_setting_is_one_line_and_the_usage_exit_code_not_an_unhandled_exception()
    {
        // Invalid DKIM settings (no selector, no key) fail the options validation when the queue is built.
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await CloudDelivery.Cli.CliApplication.RunAsync(["status", "--storage", "UseDevelopmentStorage=true", "--set", "CloudDelivery:Dkim:Keys:0:Domain=example.com"], output, error);

        Assert.Equal(CloudDelivery.Cli.CliApplication.ExitUsage, exit);
        var line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains("CloudDelivery:Dkim:Keys:0", line, StringComparison.Ordinal);
    }
}
