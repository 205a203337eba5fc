using CloudDelivery.Azure.Hosting;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;

// The Functions isolated worker: the same handlers and the same options tree ("CloudDelivery" section of
// the app settings) as `clouddelivery serve`.
var builder = FunctionsApplication.CreateBuilder(args);
builder.Services.AddCloudDelivery(builder.Configuration);
builder.Build().Run();
