using CloudDelivery.Azure.Queue;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Dkim;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Dkim;

/// <summary>The CloudDelivery:Dkim settings as the hosts bind them (here the <c>serve</c> host, which is not started unless asked).</summary>
public class DkimOptionsTests
{
    [Fact]
    public async Task Keys_from_settings_and_a_pem_file_reach_the_queue()
    {
        var rsa = DkimTestKey.Rsa("a.example");
        var ed = DkimTestKey.Ed25519("b.example");
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, ed.PrivateKeyPem);
        try
        {
            await using var app = ServeCommand.Build("http://127.0.0.1:0", Settings(new()
            {
                ["CloudDelivery:Dkim:Keys:0:Domain"] = "a.example",
                ["CloudDelivery:Dkim:Keys:0:Selector"] = "s1",
                // A single-line environment variable with escaped newlines.
                ["CloudDelivery:Dkim:Keys:0:PrivateKeyPem"] = rsa.PrivateKeyPem.Replace("\n", "\\n", StringComparison.Ordinal),
                ["CloudDelivery:Dkim:Keys:1:Domain"] = "B.Example",
                ["CloudDelivery:Dkim:Keys:1:Selector"] = "s2",
                ["CloudDelivery:Dkim:Keys:1:Algorithm"] = "ed25519-sha256",
                ["CloudDelivery:Dkim:Keys:1:PrivateKeyFile"] = file,
                ["CloudDelivery:Dkim:Headers"] = "From, Subject, Date",
            }));

            var signer = app.Services.GetRequiredService<OutboundQueue>().Dkim;

            Assert.NotNull(signer);
            Assert.Equal(["a.example:s1:RsaSha256", "b.example:s2:Ed25519Sha256"], signer.Keys.Select(k => $"{k.Domain.Ascii}:{k.Selector}:{k.Algorithm}").Order());
            Assert.Equal(["From", "Subject", "Date"], signer.Headers);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task No_keys_means_no_signer()
    {
        await using var app = ServeCommand.Build("http://127.0.0.1:0", Settings(new()));

        Assert.Null(app.Services.GetRequiredService<OutboundQueue>().Dkim);
    }

    [Theory]
    [InlineData("Algorithm", "rsa-sha1", "CloudDelivery:Dkim:Keys:0:Algorithm 'rsa-sha1' is not supported")]
    [InlineData("PrivateKeyPem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "CloudDelivery:Dkim:Keys:0:PrivateKeyPem (signed.example): no readable private key")]
    [InlineData("Algorithm", "ed25519-sha256", "CloudDelivery:Dkim:Keys:0:PrivateKeyPem (signed.example): the private key is an RSA key, which does not suit ed25519-sha256")]
    [InlineData("Domain", "not a domain!", "CloudDelivery:Dkim:Keys:0:Domain 'not a domain!' is invalid")]
    [InlineData("Selector", "bad selector", "CloudDelivery:Dkim:Keys:0:Selector 'bad selector' is invalid")]
    [InlineData("PrivateKeyPem", "@Microsoft.KeyVault(SecretUri=https://vault.vault.azure.net/secrets/dkim)", "CloudDelivery:Dkim:Keys:0:PrivateKeyPem is an unresolved Key Vault reference")]
    [InlineData("PrivateKeyFile", "/nonexistent/dkim.pem", "CloudDelivery:Dkim:Keys:0:PrivateKeyFile /nonexistent/dkim.pem cannot be read")]
    [InlineData("Selector", "", "CloudDelivery:Dkim:Keys:0:Selector is required")]
    public async Task Bad_settings_stop_the_host_at_start_up_naming_the_setting(string setting, string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["CloudDelivery:Dkim:Keys:0:Domain"] = "signed.example",
            ["CloudDelivery:Dkim:Keys:0:Selector"] = "s1",
            ["CloudDelivery:Dkim:Keys:0:PrivateKeyPem"] = DkimTestKey.Rsa("signed.example").PrivateKeyPem,
        };
        if (setting == "PrivateKeyFile")
        {
            settings.Remove("CloudDelivery:Dkim:Keys:0:PrivateKeyPem");
        }
        settings[$"CloudDelivery:Dkim:Keys:0:{setting}"] = value;
        await using var app = ServeCommand.Build("http://127.0.0.1:0", Settings(settings));

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(expected, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Configuration_refuses_a_header_list_without_from_and_duplicate_domains()
    {
        var pem = DkimTestKey.Ed25519("signed.example").PrivateKeyPem;
        var key = new Azure.Hosting.DkimKeyOptions { Domain = "signed.example", Selector = "s", Algorithm = "ed25519-sha256", PrivateKeyPem = pem };

        var noFrom = Assert.Throws<FormatException>(() => new Azure.Hosting.DkimOptions { Keys = [key], Headers = "To,Subject" }.CreateSigner());
        var twice = Assert.Throws<FormatException>(() => new Azure.Hosting.DkimOptions { Keys = [key, key] }.CreateSigner());

        Assert.StartsWith("CloudDelivery:Dkim:Headers:", noFrom.Message, StringComparison.Ordinal);
        Assert.StartsWith("CloudDelivery:Dkim:Keys:", twice.Message, StringComparison.Ordinal);
        Assert.IsType<DkimMessageSigner>(new Azure.Hosting.DkimOptions { Keys = [key] }.CreateSigner());
    }

    private static Dictionary<string, string?> Settings(Dictionary<string, string?> dkim)
    {
        dkim["CloudDelivery:Hostname"] = "mta.loopback.test";
        dkim["CloudDelivery:Storage:ConnectionString"] = "UseDevelopmentStorage=true";
        dkim["Logging:LogLevel:Default"] = "None";
        return dkim;
    }
}
