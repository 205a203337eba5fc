using System.Security.Authentication;

namespace CloudDelivery.Tls;

/// <summary>The one naming of TLS versions for results, JSON and the probe.</summary>
public static class TlsVersionNames
{
    /// <summary>"TLSv1.3", "TLSv1.2" (the names OpenSSL and Postfix logs use), else the platform's name.</summary>
    public static string Of(SslProtocols protocol) => protocol switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
        _ => protocol.ToString(),
    };
}
