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
    /// <summary>The wake-up queue's name: the setting CloudDelivery:Storage:WakeUpQueue (app setting CloudDelivery__Storage__WakeUpQueue).</summary>
    public const string WakeUpQueueExpression = "%CloudDelivery:Storage:WakeUpQueue%";

    /// <summary>
    /// The prefix of the queue trigger's connection settings (CloudDeliveryStorage__queueServiceUri with a
    /// managed identity in Azure, CloudDeliveryStorage = a connection string locally).
    /// </summary>
    public const string StorageConnection = "CloudDeliveryStorage";

    /// <summary>
    /// One wake-up per invocation: deliver what is ready for its recipient domain. A malformed message
    /// throws, so the runtime retries it maxDequeueCount times and then moves it to the poison queue
    /// (the runtime names it "&lt;queue&gt;-poison", which CloudDelivery:Storage:PoisonQueue must match).
    /// The queue name is the app's own setting, resolved by the runtime as a binding expression, so the
    /// trigger listens where the worker sends wake-ups even when an operator renames the queue.
    /// </summary>
    [Function(nameof(DeliverDomain))]
    public Task DeliverDomain([QueueTrigger(WakeUpQueueExpression, Connection = StorageConnection)] string message, CancellationToken cancellationToken) =>
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
