using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudDelivery.Addressing;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Tls;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.MtaSts;

/// <summary>Settings for fetching policies.</summary>
public sealed class MtaStsFetchOptions
{
    /// <summary>Port of the policy host; 443 except in tests.</summary>
    public int HttpsPort { get; init; } = 443;

    /// <summary>Time allowed for the whole fetch (RFC 8461 §3.3 suggests a timeout; mox allows a minute).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Policies larger than this are refused (RFC 8461 §3.3 suggests 64 KiB).</summary>
    public int MaxPolicyBytes { get; init; } = 64 * 1024;

    /// <summary>Which addresses of the policy host may be dialled.</summary>
    public AddressPolicy AddressPolicy { get; init; } = AddressPolicy.PublicOnly;

    /// <summary>Roots trusted in addition to the system store.</summary>
    public X509Certificate2Collection? ExtraTrustRoots { get; init; }
}

/// <summary>How a fetch failed, in TLSRPT's terms (RFC 8460 §4.3.2.2).</summary>
public enum MtaStsFetchFailure
{
    /// <summary>The policy host does not exist or answered 404: the domain serves no policy.</summary>
    NoPolicy,

    /// <summary>DNS, connection, HTTP status, timeout, size: "sts-policy-fetch-error".</summary>
    FetchError,

    /// <summary>The certificate of the policy host is not valid: "sts-webpki-invalid".</summary>
    WebPkiInvalid,

    /// <summary>The text is not a valid policy: "sts-policy-invalid".</summary>
    PolicyInvalid,
}

/// <summary>The result of fetching a policy: the policy and its text, or a failure.</summary>
public sealed record MtaStsFetchResult(MtaStsPolicy? Policy, string? Text, MtaStsFetchFailure? Failure, string? Error, string FailureReasonCode)
{
    /// <summary>The TLSRPT failure details for a failed fetch.</summary>
    public TlsRptFailureDetails? ToFailureDetails() => Failure switch
    {
        null => null,
        MtaStsFetchFailure.WebPkiInvalid => new TlsRptFailureDetails { ResultType = TlsRptResultType.StsWebPkiInvalid, FailureReasonCode = FailureReasonCode },
        MtaStsFetchFailure.PolicyInvalid => new TlsRptFailureDetails { ResultType = TlsRptResultType.StsPolicyInvalid, FailureReasonCode = FailureReasonCode },
        _ => new TlsRptFailureDetails { ResultType = TlsRptResultType.StsPolicyFetchError, FailureReasonCode = FailureReasonCode },
    };
}

/// <summary>
/// Fetches https://mta-sts.&lt;domain&gt;/.well-known/mta-sts.txt (RFC 8461 §3.3): the host's addresses come
/// from the engine's resolver and pass the address policy; the certificate must be WebPKI-valid for the
/// policy host; redirects are not followed; only 200 counts; size and time are bounded.
/// </summary>
public sealed class MtaStsPolicyFetcher
{
    private readonly ResolvingConnector connector;
    private readonly MtaStsFetchOptions options;
    private readonly TimeProvider time;

    public MtaStsPolicyFetcher(DnsResolver resolver, MtaStsFetchOptions options, TimeProvider? time = null)
    {
        connector = new ResolvingConnector(resolver, options.AddressPolicy);
        this.options = options;
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>Fetches and parses the policy of <paramref name="domain"/>. Never throws for remote failures.</summary>
    public async Task<MtaStsFetchResult> FetchAsync(Domain domain, CancellationToken cancellationToken)
    {
        // A client per fetch: fetches are rare (once per domain and max_age), and the connect and
        // certificate callbacks then see exactly this fetch's state.
        var context = new FetchContext($"mta-sts.{domain.Ascii}");
        using var handler = HardenedHttpsHandler.Create(
            (connect, token) => ConnectAsync(context, connect, token),
            (certificate, chain) => ValidateCertificate(context, certificate, chain),
            maxResponseHeadersKiB: 16);
        using var client = new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Timeout);
        string text;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{context.Host}/.well-known/mta-sts.txt");
            request.Headers.ConnectionClose = true;
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return Failed(MtaStsFetchFailure.NoPolicy, "no-policy-served", "policy host answered 404");
            }
            if (response.StatusCode != HttpStatusCode.OK)
            {
                // Includes 3xx: RFC 8461 §3.3 forbids following redirects.
                return Failed(MtaStsFetchFailure.FetchError, "cannot-fetch-policy", $"HTTP status {(int)response.StatusCode}, 200 required");
            }
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            if (mediaType is not null && !mediaType.Equals("text/plain", StringComparison.OrdinalIgnoreCase))
            {
                return Failed(MtaStsFetchFailure.PolicyInvalid, "policy-syntax-error", $"policy served as {mediaType}, text/plain required (RFC 8461 §3.2)");
            }
            await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
            var buffer = new byte[options.MaxPolicyBytes + 1];
            var length = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(length), timeout.Token)) > 0)
            {
                length += read;
                if (length > options.MaxPolicyBytes)
                {
                    return Failed(MtaStsFetchFailure.FetchError, "cannot-fetch-policy", $"policy larger than {options.MaxPolicyBytes} bytes");
                }
            }
            text = Encoding.UTF8.GetString(buffer, 0, length);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Failed(MtaStsFetchFailure.FetchError, "cannot-fetch-policy", $"timed out after {options.Timeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException e) when (context.Connect.NoSuchHost)
        {
            return Failed(MtaStsFetchFailure.NoPolicy, "no-policy-served", e.Message);
        }
        catch (HttpRequestException e) when (context.CertificateFailure is { } pkix)
        {
            var reason = pkix.TlsRptResultType + (pkix.FailureReasonCode.Length > 0 ? "+" + pkix.FailureReasonCode : string.Empty);
            return Failed(MtaStsFetchFailure.WebPkiInvalid, reason, $"certificate of {context.Host}: {pkix.Error} ({e.Message})");
        }
        catch (HttpRequestException e)
        {
            var reason = context.Connect.DnsError?.IsAuthenticationFailure == true ? context.Connect.DnsError.TlsRptReasonCode : "cannot-fetch-policy";
            return Failed(MtaStsFetchFailure.FetchError, reason, context.Connect.Error ?? e.Message);
        }
        catch (IOException e)
        {
            return Failed(MtaStsFetchFailure.FetchError, "cannot-fetch-policy", e.Message);
        }

        try
        {
            return new MtaStsFetchResult(MtaStsPolicy.Parse(text), text, null, null, string.Empty);
        }
        catch (MtaStsSyntaxException e)
        {
            return new MtaStsFetchResult(null, text, MtaStsFetchFailure.PolicyInvalid, e.Message, "policy-syntax-error");
        }
    }

    private static MtaStsFetchResult Failed(MtaStsFetchFailure failure, string reasonCode, string error) => new(null, null, failure, error, reasonCode);

    private ValueTask<Stream> ConnectAsync(FetchContext state, SocketsHttpConnectionContext context, CancellationToken cancellationToken) =>
        // The policy host's port is fixed (443, RFC 8461 §3.3), whatever the URL says; tests move it.
        connector.ConnectAsync(context.DnsEndPoint.Host, options.HttpsPort, state.Connect, cancellationToken);

    private bool ValidateCertificate(FetchContext state, X509Certificate? certificate, X509Chain? chain)
    {
        var result = PkixVerifier.VerifyPresented(certificate, chain, state.Host, options.ExtraTrustRoots, time.GetUtcNow());
        if (!result.Valid)
        {
            state.CertificateFailure = result;
        }
        return result.Valid;
    }

    private sealed class FetchContext(string host)
    {
        public string Host { get; } = host;

        public ConnectAttempt Connect { get; } = new();

        public PkixVerification? CertificateFailure { get; set; }
    }
}
