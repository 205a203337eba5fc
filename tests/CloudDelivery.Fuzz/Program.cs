using System.Collections.Concurrent;
using System.Diagnostics;
using CloudDelivery.Fuzz;
using CsCheck;

// Runs generated inputs through every parser of untrusted bytes and reports crashes and hangs.
//   dotnet run -c Release --project tests/CloudDelivery.Fuzz -- [--iterations 100000] [--target NAME] [--seed SEED]
// A crash is an exception the parser does not document for bad input, or a broken promise (CsCheck shrinks
// it to a small example); a hang is one input taking longer than --hang-seconds (default 2). Exit code 0
// when there were none, 1 otherwise.
var iterations = 100_000L;
string? only = null;
string? seed = null;
var hangLimit = TimeSpan.FromSeconds(2);
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--iterations": iterations = long.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--target": only = args[++i]; break;
        case "--seed": seed = args[++i]; break;
        case "--hang-seconds": hangLimit = TimeSpan.FromSeconds(double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture)); break;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}; targets: {string.Join(", ", ParserTargets.All.Select(t => t.Name))}");
            return 64;
    }
}

var failures = 0;
Console.WriteLine($"{"target",-16} {"inputs",10} {"accepted",9} {"crashes",8} {"hangs",6} {"seconds",8}  slowest input");
foreach (var target in ParserTargets.All.Where(t => only is null || t.Name == only))
{
    var inFlight = new ConcurrentDictionary<int, (string Input, long Started)>();
    var slowest = TimeSpan.Zero;
    var hangs = 0;
    var crashes = 0;
    var accepted = 0L;
    string? example = null;
    var watch = Stopwatch.StartNew();
    using var done = new CancellationTokenSource();
    // A watchdog for inputs that never return: the check cannot be interrupted, so the run ends here.
    var watchdog = Task.Run(async () =>
    {
        while (!done.IsCancellationRequested)
        {
            foreach (var (thread, (input, started)) in inFlight)
            {
                if (Stopwatch.GetElapsedTime(started) > hangLimit * 10)
                {
                    Console.WriteLine($"{target.Name}: HANG, an input has run for {Stopwatch.GetElapsedTime(started).TotalSeconds:0} s: {Check.Print(input)}");
                    Environment.Exit(1);
                }
            }
            try
            {
                await Task.Delay(1000, done.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    });
    try
    {
        target.Inputs.Sample(input =>
        {
            var started = Stopwatch.GetTimestamp();
            inFlight[Environment.CurrentManagedThreadId] = (input, started);
            if (target.Check(input))
            {
                Interlocked.Increment(ref accepted);
            }
            inFlight.TryRemove(Environment.CurrentManagedThreadId, out _);
            var took = Stopwatch.GetElapsedTime(started);
            lock (inFlight)
            {
                slowest = took > slowest ? took : slowest;
            }
            if (took > hangLimit)
            {
                Interlocked.Increment(ref hangs);
                throw new TimeoutException($"one input took {took.TotalSeconds:0.0} s");
            }
        }, seed: seed, iter: iterations, writeLine: _ => { });
    }
    catch (Exception e)
    {
        crashes = hangs > 0 ? 0 : 1;
        example = e.Message;
    }
    await done.CancelAsync();
    await watchdog;
    Console.WriteLine($"{target.Name,-16} {iterations,10} {accepted,9} {crashes,8} {hangs,6} {watch.Elapsed.TotalSeconds,8:0.0}  {slowest.TotalMilliseconds:0.0} ms");
    if (example is not null)
    {
        failures++;
        Console.WriteLine(example);
    }
}
return failures == 0 ? 0 : 1;
