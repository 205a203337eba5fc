using CloudDelivery.Azure.Suppression;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>
/// /api/suppressions: the very handlers <c>serve</c> maps (<see cref="SuppressionHttpApi"/>). The Functions
/// app has no refresh loop: a check that finds the snapshot older than CloudDelivery:Suppression:RefreshInterval
/// refreshes it first (see <see cref="SuppressionList"/>).
/// </summary>
public sealed class SuppressionFunctions(SuppressionList list)
{
    [Function(nameof(ListSuppressions))]
    public Task<IResult> ListSuppressions([HttpTrigger(AuthorizationLevel.Function, "get", Route = "suppressions")] HttpRequest request, CancellationToken cancellationToken) =>
        SuppressionHttpApi.ListAsync(request, list, cancellationToken);

    [Function(nameof(AddSuppression))]
    public Task<IResult> AddSuppression([HttpTrigger(AuthorizationLevel.Function, "post", Route = "suppressions")] HttpRequest request, CancellationToken cancellationToken) =>
        SuppressionHttpApi.AddAsync(request, null, list, cancellationToken);

    [Function(nameof(LookUpSuppression))]
    public Task<IResult> LookUpSuppression([HttpTrigger(AuthorizationLevel.Function, "get", Route = "suppressions/{address}")] HttpRequest request, string address, CancellationToken cancellationToken) =>
        SuppressionHttpApi.LookupAsync(request, address, list, cancellationToken);

    [Function(nameof(PutSuppression))]
    public Task<IResult> PutSuppression([HttpTrigger(AuthorizationLevel.Function, "put", Route = "suppressions/{address}")] HttpRequest request, string address, CancellationToken cancellationToken) =>
        SuppressionHttpApi.AddAsync(request, address, list, cancellationToken);

    [Function(nameof(RemoveSuppression))]
    public Task<IResult> RemoveSuppression([HttpTrigger(AuthorizationLevel.Function, "delete", Route = "suppressions/{address}")] HttpRequest request, string address, CancellationToken cancellationToken) =>
        SuppressionHttpApi.RemoveAsync(request, address, list, cancellationToken);
}
