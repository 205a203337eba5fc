using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.WakeUps;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Http;

namespace CloudDelivery.Functions;

/// <summary>
/// The Azure Functions entry points. They only adapt triggers to the handlers in src/; everything they do
/// is tested through those handlers and by calling these methods.
/// </summary>
public sealed class DeliveryFunctions(DomainDeliveryHandler handler, WakeUpWorker worker, SubmissionEndpoint submissions)
{
    /// <summary>
    /// One wake-up per invocation: deliver what is ready for its recipient domain. A malformed message
    /// throws, so the runtime retries it maxDequeueCount times and then moves it to the poison queue.
    /// </summary>
    [Function(nameof(DeliverDomain))]
    public Task DeliverDomain([QueueTrigger("cd-wakeups", Connection = "CloudDeliveryStorage")] string message, CancellationToken cancellationToken) =>
        handler.HandleAsync(WakeUp.Parse(message), cancellationToken);

    /// <summary>Wakes domains whose due records have no pending wake-up (after a crash between writes).</summary>
    [Function(nameof(SweepStranded))]
    public Task SweepStranded([TimerTrigger("0 */5 * * * *")] TimerInfo timer, CancellationToken cancellationToken) =>
        worker.SweepAsync(cancellationToken);

    /// <summary>POST /api/messages: raw RFC 5322 with the envelope in the query or headers, or JSON.</summary>
    [Function(nameof(SubmitMessage))]
    public async Task<HttpResponseData> SubmitMessage([HttpTrigger(AuthorizationLevel.Function, "post", Route = "messages")] HttpRequestData request, CancellationToken cancellationToken)
    {
        var query = System.Web.HttpUtility.ParseQueryString(request.Url.Query);
        var submission = new HttpSubmission(
            query.AllKeys.Where(k => k is not null).SelectMany(k => (query.GetValues(k) ?? []).Select(v => (Key: k!, Value: v))).ToLookup(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase),
            request.Headers.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase),
            request.Headers.TryGetValues("Content-Type", out var types) ? types.First().Split(';')[0].Trim() : null,
            request.Body);
        var result = await submissions.HandleAsync(submission, cancellationToken);
        var response = request.CreateResponse((System.Net.HttpStatusCode)result.Status);
        response.Headers.Add("Content-Type", "application/json");
        if (result.RetryAfterSeconds is { } seconds)
        {
            // 503 for storage trouble: tell the client when to try again (RFC 9110 §10.2.3).
            response.Headers.Add("Retry-After", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        await response.WriteStringAsync(result.Json, cancellationToken);
        return response;
    }
}
