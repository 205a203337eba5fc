using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Tls;

namespace CloudDelivery.TlsRpt.Https;

/// <summary>
/// Delivers a report to an "https:" rua destination (RFC 8460 §5.4): one POST of the gzip-compressed JSON
/// as application/tlsrpt+gzip; any 2xx is success. The host is resolved through the configured resolver and
/// dialled under the address policy like every other connection; the certificate must be WebPKI-valid for
/// it; redirects are not followed (a report goes where the domain's record says, nowhere else).
/// </summary>
public sealed class TlsRptHttpsPoster(DnsResolver resolver, AddressPolicy addressPolicy, X509Certificate2Collection? extraTrustRoots = null, TimeProvider? time = null)
{
    private readonly ResolvingConnector connector = new(resolver, addressPolicy);
    private readonly TimeProvider clock = time ?? TimeProvider.System;

    /// <summary>Time allowed for the whole POST: connect, TLS, sending the report and the response headers.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Posts <paramref name="gzippedReport"/>; returns null on success, else why it failed. Never throws for remote failures.</summary>
    public async Task<string?> PostAsync(Uri destination, byte[] gzippedReport, CancellationToken cancellationToken)
    {
        var attempt = new ConnectAttempt();
        string? certificateError = null;
        // The receiver is chosen by whoever publishes the record: its headers are capped (in KiB) and its
        // body is never read, since only the status matters (RFC 8460 §5.4).
        using var handler = HardenedHttpsHandler.Create(
            (context, token) => connector.ConnectAsync(context.DnsEndPoint.Host, context.DnsEndPoint.Port, attempt, token),
            (certificate, chain) =>
            {
                var verification = PkixVerifier.VerifyPresented(certificate, chain, destination.IdnHost, extraTrustRoots, clock.GetUtcNow());
                certificateError = verification.Valid ? null : verification.Error;
                return verification.Valid;
            },
            maxResponseHeadersKiB: 64);
        using var client = new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var content = new ByteArrayContent(gzippedReport);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/tlsrpt+gzip");
            using var request = new HttpRequestMessage(HttpMethod.Post, destination) { Content = content };
            request.Headers.ConnectionClose = true;
            // Headers only: a buffered read would wait for (and hold) whatever body the receiver sends.
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            return response.IsSuccessStatusCode ? null : $"HTTP status {(int)response.StatusCode} {response.ReasonPhrase}";
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"timed out after {Timeout.TotalSeconds:0} s";
        }
        catch (HttpRequestException e)
        {
            return certificateError is not null ? $"certificate of {destination.Host}: {certificateError}" : attempt.Error ?? e.Message;
        }
        catch (IOException e)
        {
            return e.Message;
        }
    }
}
