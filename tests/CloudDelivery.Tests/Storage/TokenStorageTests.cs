using Azure;
using Azure.Data.Tables;
using Azure.Identity;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Storage;

/// <summary>
/// Storage by Entra ID token (CloudDelivery:Storage:AccountName), end to end against Azurite over HTTPS
/// with OAuth, and the endpoint and credential choices behind it.
/// </summary>
public class TokenStorageTests(HttpsAzuriteFixture fixture) : IClassFixture<HttpsAzuriteFixture>
{
    private static int nextName;

    private OutboundStorageOptions AzuriteOptions()
    {
        var n = Interlocked.Increment(ref nextName);
        return new OutboundStorageOptions
        {
            // A connection string that could not work: the token path must not use it.
            ConnectionString = "not a connection string",
            AccountName = CloudDelivery.Loopback.Storage.AzuriteProcess.AccountName,
            BlobEndpoint = fixture.Azurite.BlobEndpoint,
            QueueEndpoint = fixture.Azurite.QueueEndpoint,
            TableEndpoint = fixture.Azurite.TableEndpoint,
            BodiesContainer = $"tokenbodies{n}",
            RecipientsTable = $"tokenrecipients{n}",
            TlsReportsTable = $"tokentlsrpt{n}",
            MtaStsTable = $"tokenmtasts{n}",
            WakeUpQueue = $"tokenwakeups{n}",
            PoisonQueue = $"tokenpoison{n}",
        };
    }

    [Fact]
    public async Task Every_client_works_with_a_bearer_token_over_https()
    {
        var credential = new UnsignedTokenCredential();
        var storage = new OutboundStorage(AzuriteOptions(), counter: null, credential, fixture.TrustingTransport());

        await storage.EnsureCreatedAsync(CancellationToken.None);
        await storage.Bodies.UploadBlobAsync("body", BinaryData.FromString("Subject: token\r\n\r\nhi\r\n"));
        Assert.Equal("Subject: token\r\n\r\nhi\r\n", (await storage.Bodies.GetBlobClient("body").DownloadContentAsync()).Value.Content.ToString());
        await storage.Recipients.AddEntityAsync(new TableEntity("example.com", "r1") { ["State"] = "queued" });
        Assert.Equal("queued", (await storage.Recipients.GetEntityAsync<TableEntity>("example.com", "r1")).Value.GetString("State"));
        await storage.WakeUps.SendMessageAsync("example.com");
        Assert.Equal("example.com", (await storage.WakeUps.ReceiveMessageAsync()).Value.MessageText);
        await storage.Poison.SendMessageAsync("poisoned");
        Assert.Equal(1, (await storage.Poison.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        await storage.TlsReports.AddEntityAsync(new TableEntity("20261201", "example.com"));
        await storage.MtaStsPolicies.AddEntityAsync(new TableEntity("example.com", "policy"));

        // Every service asked for a storage token, and the transaction counter saw every request.
        Assert.All(credential.RequestedScopes, scope => Assert.Equal("https://storage.azure.com/.default", scope));
        Assert.NotEmpty(credential.RequestedScopes);
        Assert.True(storage.Counter.Count >= 15, $"{storage.Counter.Count} requests counted");
    }

    [Fact]
    public async Task Azurite_rejects_an_expired_token_so_the_token_is_what_authorizes()
    {
        var storage = new OutboundStorage(AzuriteOptions(), counter: null, new UnsignedTokenCredential(TimeSpan.FromMinutes(-1)), fixture.TrustingTransport());

        var error = await Assert.ThrowsAsync<RequestFailedException>(() => storage.WakeUps.CreateIfNotExistsAsync());

        Assert.Equal(403, error.Status);
    }

    [Fact]
    public void Endpoints_derive_from_the_account_name_and_suffix()
    {
        var storage = new OutboundStorage(new OutboundStorageOptions { AccountName = "stexample", EndpointSuffix = "core.chinacloudapi.cn" }, credential: new UnsignedTokenCredential());

        Assert.Equal(new Uri("https://stexample.blob.core.chinacloudapi.cn/cd-bodies"), storage.Bodies.Uri);
        Assert.Equal(new Uri("https://stexample.queue.core.chinacloudapi.cn/cd-wakeups"), storage.WakeUps.Uri);
        Assert.Equal(new Uri("https://stexample.queue.core.chinacloudapi.cn/cd-wakeups-poison"), storage.Poison.Uri);
        Assert.Equal("stexample", storage.Recipients.AccountName);
        Assert.Equal(new Uri("https://stexample.table.core.chinacloudapi.cn/cdrecipients"), storage.Recipients.Uri);
    }

    [Fact]
    public void An_explicit_endpoint_that_is_not_a_URI_names_its_setting()
    {
        var error = Assert.Throws<FormatException>(() => new OutboundStorage(new OutboundStorageOptions { AccountName = "stexample", QueueEndpoint = "queue.example" }, credential: new UnsignedTokenCredential()));

        Assert.Contains("CloudDelivery:Storage:QueueEndpoint", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_endpoint_setting_fails_options_validation()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["CloudDelivery:Storage:AccountName"] = "stclouddelivery",
            ["CloudDelivery:Storage:TableEndpoint"] = "not a uri",
        }).Build();
        using var services = new ServiceCollection().AddCloudDelivery(configuration).BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<CloudDeliveryOptions>>().Value);

        Assert.Contains("CloudDelivery:Storage:TableEndpoint", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_an_account_name_the_connection_string_is_used()
    {
        var storage = new OutboundStorage(new OutboundStorageOptions());

        Assert.False(storage.Options.UsesTokenCredential);
        Assert.Equal("devstoreaccount1", storage.Bodies.AccountName);
    }

    [Fact]
    public void The_managed_identity_client_id_selects_the_user_assigned_identity()
    {
        Assert.IsType<ManagedIdentityCredential>(AzureCredentials.Create("11111111-2222-3333-4444-555555555555"));
        Assert.IsType<DefaultAzureCredential>(AzureCredentials.Create(null));
        Assert.IsType<DefaultAzureCredential>(AzureCredentials.Create(" "));
    }

    [Fact]
    public void The_hosts_bind_the_contract_settings_to_token_storage()
    {
        // The app settings infra-bicep/modules/function-app.bicep writes (telemetry contract names).
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["CloudDelivery:Storage:AccountName"] = "stclouddelivery",
            ["CloudDelivery:Storage:EndpointSuffix"] = "core.windows.net",
            ["CloudDelivery:ManagedIdentityClientId"] = "11111111-2222-3333-4444-555555555555",
            ["CloudDelivery:Hostname"] = "mta.example.com",
        }).Build();
        using var services = new ServiceCollection().AddCloudDelivery(configuration).BuildServiceProvider();

        var storage = services.GetRequiredService<OutboundStorage>();

        Assert.True(storage.Options.UsesTokenCredential);
        Assert.Equal(new Uri("https://stclouddelivery.blob.core.windows.net/cd-bodies"), storage.Bodies.Uri);
        Assert.Equal(new Uri("https://stclouddelivery.table.core.windows.net/cdrecipients"), storage.Recipients.Uri);
    }
}
