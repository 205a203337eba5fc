using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.WakeUps;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;

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

    /// <summary>
    /// POST /api/messages: raw RFC 5322 with the envelope in the query or headers, or JSON. On the Functions
    /// ASP.NET Core integration, so this is the very handler <c>serve</c> maps (<see cref="SubmissionHttpApi"/>).
    /// </summary>
    [Function(nameof(SubmitMessage))]
    public Task<IResult> SubmitMessage([HttpTrigger(AuthorizationLevel.Function, "post", Route = "messages")] HttpRequest request, CancellationToken cancellationToken) =>
        SubmissionHttpApi.SubmitAsync(request, submissions, cancellationToken);
}
