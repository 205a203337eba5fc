using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace CloudDelivery.Dialing;

/// <summary>
/// The HTTP handler of every HTTPS request the service makes to a host someone else runs (MTA-STS policy
/// hosts, TLSRPT collectors, event sinks): it dials through the caller's connector (the one resolver and
/// address policy), checks the certificate with the caller's WebPKI check, follows no redirect, uses no
/// proxy, cookies or decompression, and caps the response headers. One place, so the three stay alike.
/// </summary>
public static class HardenedHttpsHandler
{
    /// <param name="connect">Opens the connection (the resolver and dialler; see <see cref="ResolvingConnector"/>).</param>
    /// <param name="validateCertificate">The WebPKI check of the presented certificate and chain.</param>
    /// <param name="maxResponseHeadersKiB">Largest response header section taken, in KiB.</param>
    public static SocketsHttpHandler Create(
        Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> connect,
        Func<X509Certificate?, X509Chain?, bool> validateCertificate,
        int maxResponseHeadersKiB)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectCallback = connect,
            MaxResponseHeadersLength = maxResponseHeadersKiB,
        };
        // Revocation is not checked: an OCSP or CRL fetch would be a network read to a third host, outside the
        // resolver, the address policy and the request's deadline.
        handler.SslOptions.CertificateRevocationCheckMode = X509RevocationMode.NoCheck;
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, _) => validateCertificate(certificate, chain);
        return handler;
    }
}
