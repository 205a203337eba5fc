using CloudDelivery.Azure.Hosting;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Delivery;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Hosting;

/// <summary>Delivery and smarthost settings are checked when the host starts: a bad value stops it, naming the key.</summary>
public class DeliveryOptionsValidationTests
{
    [Theory]
    [InlineData("CloudDelivery:Delivery:Resolver", "dns.example", "CloudDelivery:Delivery:Resolver dns.example: expected an IP address and port")]
    [InlineData("CloudDelivery:Delivery:SmtpPort", "0", "CloudDelivery:Delivery:SmtpPort 0: expected a port from 1 to 65535")]
    [InlineData("CloudDelivery:Delivery:MtaStsHttpsPort", "65536", "CloudDelivery:Delivery:MtaStsHttpsPort 65536: expected a port from 1 to 65535")]
    [InlineData("CloudDelivery:Delivery:CommandTimeoutSeconds", "-5", "CloudDelivery:Delivery:CommandTimeoutSeconds -5: expected a whole number of at least 1")]
    [InlineData("CloudDelivery:Delivery:MaxSessionsPerHost", "0", "CloudDelivery:Delivery:MaxSessionsPerHost 0: expected a whole number of at least 1")]
    [InlineData("CloudDelivery:Delivery:TrustCaFile", "/nonexistent/roots.pem", "CloudDelivery:Delivery:TrustCaFile /nonexistent/roots.pem: ")]
    [InlineData("CloudDelivery:Smarthost:Port", "0", "CloudDelivery:Smarthost:Port 0: expected a port from 1 to 65535")]
    [InlineData("CloudDelivery:Hostname", " ", "CloudDelivery:Hostname: expected our host name")]
    public async Task A_bad_setting_stops_the_host_at_start_up_naming_the_key(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["CloudDelivery:Hostname"] = "mta.loopback.test",
            ["CloudDelivery:Storage:ConnectionString"] = "UseDevelopmentStorage=true",
            ["CloudDelivery:Smarthost:Host"] = "relay.loopback.test",
            ["Logging:LogLevel:Default"] = "None",
            [key] = value,
        };
        await using var app = ServeCommand.Build("http://127.0.0.1:0", settings);

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(expected, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_engine_registration_binds_its_section_directly()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["CloudDelivery:Delivery:Resolver"] = "127.0.0.9",
            ["CloudDelivery:Delivery:SessionTimeoutSeconds"] = "90",
            ["CloudDelivery:Delivery:MaxSessionsPerHost"] = "2",
            ["CloudDelivery:Smarthost:Host"] = "relay.loopback.test",
            ["CloudDelivery:Smarthost:UserName"] = string.Empty,
            ["CloudDelivery:Smarthost:SenderDomains"] = "a.example, b.example",
        }).Build();
        var services = new ServiceCollection();
        services.AddDeliveryEngine(configuration.GetSection(CloudDeliveryOptions.DeliverySection));
        services.AddSmarthost(configuration.GetSection(CloudDeliveryOptions.SmarthostSection));
        using var provider = services.BuildServiceProvider();

        var engine = provider.GetRequiredService<DeliveryEngine>();
        var smarthost = provider.GetRequiredService<IOptions<SmarthostOptions>>().Value;

        Assert.Equal(TimeSpan.FromSeconds(90), engine.Options.SessionTimeout);
        Assert.Equal(2, engine.Options.MaxSessionsPerHost);
        // A resolver without a port asks port 53.
        Assert.Equal(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("127.0.0.9"), 53), provider.GetRequiredService<IOptions<DeliveryOptions>>().Value.ResolverEndPoint());
        Assert.True(smarthost.IsEnabled);
        Assert.Null(smarthost.UserName);
        Assert.Equal(["a.example", "b.example"], smarthost.SenderDomainList);
    }
}
