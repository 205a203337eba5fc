using System.Text;
using Microsoft.AspNetCore.Http;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// Calls an HTTP-triggered function method the way the Functions ASP.NET Core integration does: with an
/// <see cref="HttpRequest"/> whose body is a real stream, then executes the <see cref="IResult"/> it returns
/// into a response whose status, headers and body the test reads.
/// </summary>
internal static class FunctionHttpCall
{
    public static HttpRequest Request(string method, string pathAndQuery, string? contentType = null, byte[]? body = null)
    {
        var context = new DefaultHttpContext();
        var uri = new Uri(new Uri("https://app.example"), pathAndQuery);
        context.Request.Method = method;
        context.Request.Scheme = uri.Scheme;
        context.Request.Host = new HostString(uri.Host);
        context.Request.Path = PathString.FromUriComponent(uri);
        context.Request.QueryString = QueryString.FromUriComponent(uri);
        if (contentType is not null)
        {
            context.Request.ContentType = contentType;
        }
        body ??= [];
        context.Request.Body = new MemoryStream(body);
        context.Request.ContentLength = body.Length;
        context.Response.Body = new MemoryStream();
        return context.Request;
    }

    public static HttpRequest Request(string method, string pathAndQuery, string contentType, string body) =>
        Request(method, pathAndQuery, contentType, Encoding.UTF8.GetBytes(body));

    /// <summary>Runs <paramref name="function"/> on <paramref name="request"/> and executes its result.</summary>
    public static async Task<HttpResponse> InvokeAsync(HttpRequest request, Func<HttpRequest, Task<IResult>> function)
    {
        var result = await function(request);
        await result.ExecuteAsync(request.HttpContext);
        request.HttpContext.Response.Body.Position = 0;
        return request.HttpContext.Response;
    }

    /// <summary>The response body as bytes (after <see cref="InvokeAsync"/>).</summary>
    public static byte[] Body(this HttpResponse response) => ((MemoryStream)response.Body).ToArray();
}
