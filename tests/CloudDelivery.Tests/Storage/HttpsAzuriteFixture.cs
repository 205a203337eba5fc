using System.Security.Cryptography.X509Certificates;
using Azure.Core.Pipeline;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Loopback.Storage;

namespace CloudDelivery.Tests.Storage;

/// <summary>
/// Azurite over HTTPS with OAuth ("--oauth basic"), on loopback, with a server certificate from a
/// throw-away CA: the storage endpoint for token (managed identity) access in tests. Azurite checks a
/// bearer token's issuer, audience and lifetime but not its signature, so <see cref="UnsignedTokenCredential"/>
/// can stand in for Entra ID.
/// </summary>
public sealed class HttpsAzuriteFixture : IAsyncLifetime
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), $"clouddelivery-azurite-tls-{Guid.NewGuid():N}");
    private readonly TestPki pki = TestPki.Create();
    private AzuriteProcess? azurite;

    public AzuriteProcess Azurite => azurite!;

    /// <summary>The throw-away CA's certificate, PEM: what a child process trusts through SSL_CERT_FILE.</summary>
    public string RootCertificatePem => pki.Root.ExportCertificatePem();

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(directory);
        using var certificate = pki.Issue(["localhost", "127.0.0.1"]);
        var certificatePath = Path.Combine(directory, "azurite.crt.pem");
        var keyPath = Path.Combine(directory, "azurite.key.pem");
        await File.WriteAllTextAsync(certificatePath, certificate.ExportCertificatePem());
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem());
        }
        azurite = await AzuriteProcess.StartAsync(https: new AzuriteHttps(certificatePath, keyPath));
    }

    /// <summary>
    /// An HTTP transport that trusts the test CA only. The host name is not checked: the clients dial
    /// 127.0.0.1, and the certificate names localhost.
    /// </summary>
    public HttpPipelineTransport TrustingTransport() => new HttpClientTransport(pki.TrustingHandler());

    public Task DisposeAsync()
    {
        azurite?.Dispose();
        pki.Dispose();
        Directory.Delete(directory, recursive: true);
        return Task.CompletedTask;
    }
}
