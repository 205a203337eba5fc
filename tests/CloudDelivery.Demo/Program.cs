using CloudDelivery.Demo;

// `dotnet run --project tests/CloudDelivery.Demo`: Ctrl+C stops the peers and Azurite cleanly.
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
return await LoopbackDemo.RunAsync(Console.Out, stop.Token);
