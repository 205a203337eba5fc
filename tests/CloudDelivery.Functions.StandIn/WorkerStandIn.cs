using System.Net;
using System.Text;

// Stand-ins for the parts of Microsoft.Azure.Functions.Worker (and its Http, Storage Queues and Timer
// extensions) that functions/CloudDelivery.Functions uses, with the same names and call shapes. They
// carry no behaviour of the Functions runtime; they let the compiler check the function sources and let
// tests call the function methods.
namespace Microsoft.Azure.Functions.Worker
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class FunctionAttribute(string name) : Attribute
    {
        public string Name { get; } = name;
    }

    [AttributeUsage(AttributeTargets.Parameter)]
    public sealed class QueueTriggerAttribute(string queueName) : Attribute
    {
        public string QueueName { get; } = queueName;

        public string? Connection { get; set; }
    }

    [AttributeUsage(AttributeTargets.Parameter)]
    public sealed class TimerTriggerAttribute(string schedule) : Attribute
    {
        public string Schedule { get; } = schedule;
    }

    public sealed class TimerInfo
    {
        public bool IsPastDue { get; set; }
    }

    public enum AuthorizationLevel
    {
        Anonymous,
        User,
        Function,
        System,
        Admin,
    }

    [AttributeUsage(AttributeTargets.Parameter)]
    public sealed class HttpTriggerAttribute(AuthorizationLevel authLevel, params string[] methods) : Attribute
    {
        public AuthorizationLevel AuthLevel { get; } = authLevel;

        public IReadOnlyList<string> Methods { get; } = methods;

        public string? Route { get; set; }
    }
}

namespace Microsoft.Azure.Functions.Worker.Http
{
    public sealed class HttpHeadersCollection : System.Net.Http.Headers.HttpHeaders
    {
    }

    public class HttpRequestData(Uri url, Stream body)
    {
        public Uri Url { get; } = url;

        public HttpHeadersCollection Headers { get; } = [];

        public Stream Body { get; } = body;

        // An instance method here, an extension method in the real library: the call looks the same.
#pragma warning disable CA1822
        public HttpResponseData CreateResponse(HttpStatusCode statusCode) => new(statusCode);
#pragma warning restore CA1822
    }

    public class HttpResponseData(HttpStatusCode statusCode)
    {
        public HttpStatusCode StatusCode { get; } = statusCode;

        public HttpHeadersCollection Headers { get; } = [];

        public MemoryStream Body { get; } = new();

        public async Task WriteStringAsync(string value, CancellationToken cancellationToken = default) =>
            await Body.WriteAsync(Encoding.UTF8.GetBytes(value), cancellationToken);
    }
}
