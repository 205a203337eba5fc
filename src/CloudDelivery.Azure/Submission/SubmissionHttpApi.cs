using System.Globalization;
using System.Text;
using CloudDelivery.Azure.Queue;
using Microsoft.AspNetCore.Http;

namespace CloudDelivery.Azure.Submission;

/// <summary>
/// POST /api/messages on ASP.NET Core, the one submission handler of both hosts: <c>serve</c> maps it on
/// its Kestrel, the Functions app's HTTP trigger (ASP.NET Core integration) calls it with the trigger's
/// request. It turns the request into an <see cref="HttpSubmission"/> for <see cref="SubmissionEndpoint"/>
/// and the endpoint's answer into an <see cref="IResult"/> the host executes.
/// </summary>
public static class SubmissionHttpApi
{
    /// <summary>Handles one submission; never throws for the client's input or for storage trouble.</summary>
    public static async Task<IResult> SubmitAsync(HttpRequest request, SubmissionEndpoint endpoint, CancellationToken cancellationToken) =>
        ToResult(await endpoint.HandleAsync(ToSubmission(request), cancellationToken));

    /// <summary>The endpoint's answer as an ASP.NET Core result (status, JSON, Retry-After for a 503).</summary>
    public static IResult ToResult(HttpSubmissionResponse response) => new JsonApiResult(response.Status, response.Json, response.RetryAfterSeconds);

    private static HttpSubmission ToSubmission(HttpRequest request) => new(
        request.Query.SelectMany(q => q.Value.Select(v => (q.Key, Value: v ?? string.Empty))).ToLookup(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase),
        request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
        request.ContentType?.Split(';')[0].Trim(),
        new RequestBody(request.Body));

    /// <summary>
    /// The request body, with the server's refusal of a body over its limit (Kestrel's
    /// MaxRequestBodySize) turned into the queue's own "too large" (answered 413) and its other body errors
    /// (a body shorter than its Content-Length, a client sending too slowly) into IOExceptions the endpoint
    /// answers 400.
    /// </summary>
    private sealed class RequestBody(Stream inner) : ReadOnlyForwardStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                throw new SubmissionException(SubmissionError.TooLarge, "the request body is larger than the largest message accepted");
            }
        }
    }
}

/// <summary>An answer of the HTTP API: a status code, a JSON body and, for a 503, when to try again.</summary>
public sealed class JsonApiResult(int status, string json, int? retryAfterSeconds = null) : IResult, IStatusCodeHttpResult
{
    public int Status => status;

    int? IStatusCodeHttpResult.StatusCode => status;

    public string Json => json;

    public int? RetryAfterSeconds => retryAfterSeconds;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = status;
        httpContext.Response.ContentType = "application/json";
        httpContext.Response.ContentLength = Encoding.UTF8.GetByteCount(json);
        if (retryAfterSeconds is { } seconds)
        {
            // RFC 9110 §10.2.3: when to try again after a 503.
            httpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }
        return httpContext.Response.WriteAsync(json, Encoding.UTF8, httpContext.RequestAborted);
    }
}
