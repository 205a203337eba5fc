using CloudDelivery.Azure.Hosting;
using CloudDelivery.Functions;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// The Functions isolated worker: the same handlers and the same options tree ("CloudDelivery" section of
// the app settings) as `clouddelivery serve`.
var builder = FunctionsApplication.CreateBuilder(args);
// HTTP triggers on ASP.NET Core (HttpRequest in, IResult out), so the submission trigger runs the same
// handler as `serve` (CloudDelivery.Azure.Submission.SubmissionHttpApi).
builder.ConfigureFunctionsWebApplication();
builder.Services.AddCloudDelivery(builder.Configuration);
// The event dispatcher runs in the worker for as long as it does (its sweep is a timer function).
builder.Services.AddHostedService<CloudDelivery.Azure.Events.EventDispatcherService>();
builder.Services.AddHostedService<CloudDelivery.Azure.Shaping.SharedShapingService>();
// Which recipient domains are hot (spread over shards), read in the background so submissions never wait.
builder.Services.AddHostedService<CloudDelivery.Azure.Hosting.HotDomainsService>();
// Delivery runs keep TLSRPT results in memory; this writes them every TlsRpt:ResultsFlushInterval and at shutdown.
builder.Services.AddHostedService<CloudDelivery.Azure.Hosting.TlsRptFlushService>();
// The resolver self-check runs at start-up and then periodically, as in `serve`: a hosted service, not a timer.
builder.Services.AddHostedService<CloudDelivery.Azure.Hosting.ResolverSelfCheckService>();
// Our meters, spans, logs and exporter plus the Functions defaults, in the order FunctionsTelemetry explains.
builder.Services.AddFunctionsTelemetry(builder.Configuration);
builder.Build().Run();
