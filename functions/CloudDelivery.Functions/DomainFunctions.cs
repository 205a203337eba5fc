using CloudDelivery.Azure.Domains;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Shaping;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>GET /api/domains/{domain}: what a recipient domain's MX was last seen to support and how traffic shaping treats it, as <c>serve</c> answers it (<see cref="RecipientDomainTlsHttpApi"/>).</summary>
public sealed class DomainFunctions(OutboundQueue queue, DestinationShaping shaping)
{
    [Function(nameof(RecipientDomainTls))]
    public Task<IResult> RecipientDomainTls([HttpTrigger(AuthorizationLevel.Function, "get", Route = "domains/{domain}")] HttpRequest request, string domain, CancellationToken cancellationToken) =>
        RecipientDomainTlsHttpApi.GetAsync(domain, queue, shaping, cancellationToken);
}
