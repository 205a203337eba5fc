using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Tls;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// The HTTP handler both sinks send through: addresses come from the service's one resolver (as for MTA-STS
/// and TLSRPT), pass the given address policy, and the certificate must be WebPKI-valid for the
/// configured host (plus the operator's extra roots, Delivery:TrustCaFile). Redirects are not followed: a
/// batch goes to the URL the operator configured, nowhere else.
/// </summary>
internal static class EventSinkHttp
{
    /// <summary>Response headers are capped (in KiB, as SocketsHttpHandler counts them): only the status matters.</summary>
    private const int MaxResponseHeadersKiB = 16;

    public static SocketsHttpHandler CreateHandler(string host, DnsResolver resolver, AddressPolicy addressPolicy, X509Certificate2Collection? extraTrustRoots, TimeProvider time)
    {
        var connector = new ResolvingConnector(resolver, addressPolicy);
        var handler = HardenedHttpsHandler.Create(
            (context, token) => connector.ConnectAsync(context.DnsEndPoint.Host, context.DnsEndPoint.Port, new ConnectAttempt(), token),
            (certificate, chain) => PkixVerifier.VerifyPresented(certificate, chain, host, extraTrustRoots, time.GetUtcNow()).Valid,
            MaxResponseHeadersKiB);
        // Pooled connections are reused between batches, but not forever: a DNS change is picked up.
        handler.PooledConnectionLifetime = TimeSpan.FromMinutes(5);
        return handler;
    }

    /// <summary>The innermost useful message of a transport failure (the connector's reason, a TLS error).</summary>
    public static string Describe(Exception e)
    {
        var message = e.Message;
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
        {
            message = $"{message} ({inner.Message})";
        }
        return message;
    }
}
