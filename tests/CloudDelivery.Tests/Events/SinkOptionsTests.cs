using CloudDelivery.Azure.Events;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Cli.Commands;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Events;

/// <summary>Sink settings are checked when the host starts (a bad one stops it, naming the key), and each configured sink is registered.</summary>
public class SinkOptionsTests
{
    [Theory]
    [InlineData("CloudDelivery:Events:Webhooks:0:Url", "http://hooks.shop.example/mail", "CloudDelivery:Events:Webhooks:0:Url http://hooks.shop.example/mail: expected an absolute https URL")]
    [InlineData("CloudDelivery:Events:Webhooks:0:Url", "/relative", "CloudDelivery:Events:Webhooks:0:Url /relative: expected an absolute https URL")]
    [InlineData("CloudDelivery:Events:Webhooks:0:Secret", " ", "CloudDelivery:Events:Webhooks:0:Secret is required")]
    [InlineData("CloudDelivery:Events:Webhooks:0:Secret", "whsec_not base64!", "CloudDelivery:Events:Webhooks:0:Secret: a whsec_ secret must be base64")]
    [InlineData("CloudDelivery:Events:Webhooks:0:Secret", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/hook)", "CloudDelivery:Events:Webhooks:0:Secret is an unresolved Key Vault reference")]
    [InlineData("CloudDelivery:Events:Webhooks:0:SenderDomains", "shop.example, not a domain", "CloudDelivery:Events:Webhooks:0:SenderDomains 'not a domain' is not a domain")]
    [InlineData("CloudDelivery:Events:Webhooks:0:TimeoutSeconds", "0", "CloudDelivery:Events:Webhooks:0:TimeoutSeconds 0: expected 1 to 300")]
    [InlineData("CloudDelivery:Events:Webhooks:1:Url", "https://hooks.shop.example/other", "CloudDelivery:Events:Webhooks:1:Secret is required")]
    [InlineData("CloudDelivery:Events:EventGrid:Endpoint", "http://topic.example/api/events", "CloudDelivery:Events:EventGrid:Endpoint http://topic.example/api/events: expected an absolute https URL")]
    [InlineData("CloudDelivery:Events:EventGrid:MaxBatchSize", "0", "CloudDelivery:Events:EventGrid:MaxBatchSize 0: expected 1 to 1000")]
    public async Task A_bad_sink_setting_stops_the_host_at_start_up_naming_the_key(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["CloudDelivery:Hostname"] = "mta.loopback.test",
            ["CloudDelivery:Storage:ConnectionString"] = "UseDevelopmentStorage=true",
            ["CloudDelivery:Events:EventGrid:Endpoint"] = "https://topic.westeurope-1.eventgrid.azure.net/api/events",
            ["CloudDelivery:Events:Webhooks:0:Url"] = "https://hooks.shop.example/mail",
            ["CloudDelivery:Events:Webhooks:0:Secret"] = "a secret",
            ["Logging:LogLevel:Default"] = "None",
            [key] = value,
        };
        await using var app = ServeCommand.Build("http://127.0.0.1:0", settings);

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(expected, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_webhooks_on_one_host_need_names_of_their_own()
    {
        var options = new EventSinkOptions
        {
            Webhooks =
            [
                new WebhookSinkOptions { Url = "https://hooks.shop.example/a", Secret = "s" },
                new WebhookSinkOptions { Url = "https://hooks.shop.example/b", Secret = "s" },
            ],
        };

        Assert.Contains(options.Problems(), p => p.Contains("two sinks are named 'webhook:hooks.shop.example'", StringComparison.Ordinal));

        options.Webhooks[1].Name = "orders";
        Assert.Empty(options.Problems());
    }

    [Fact]
    public void Each_configured_sink_is_registered_for_the_dispatcher_and_none_without_settings()
    {
        using var configured = Provider(new Dictionary<string, string?>
        {
            ["CloudDelivery:Events:EventGrid:Endpoint"] = "https://topic.westeurope-1.eventgrid.azure.net/api/events",
            ["CloudDelivery:Events:Webhooks:0:Url"] = "https://hooks.shop.example/mail",
            ["CloudDelivery:Events:Webhooks:0:Secret"] = "a secret",
            ["CloudDelivery:Events:Webhooks:1:Url"] = "https://hooks.news.example/mail",
            ["CloudDelivery:Events:Webhooks:1:Name"] = "newsletter",
            ["CloudDelivery:Events:Webhooks:1:SenderDomains"] = "news.example",
            ["CloudDelivery:Events:Webhooks:1:Secret"] = "another secret",
        });
        using var none = Provider([]);

        Assert.Equal(["eventgrid", "webhook:hooks.shop.example", "newsletter"], configured.GetServices<IEventSink>().Select(s => s.Name));
        Assert.Empty(none.GetServices<IEventSink>());
    }

    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddDeliveryEngine(configuration.GetSection(CloudDeliveryOptions.DeliverySection));
        services.AddEventSinks(configuration);
        return services.BuildServiceProvider();
    }
}
