using System.CommandLine;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>status --watch [--interval 2s]</c>: prints the status again every interval until Ctrl-C (as watch(1)
/// around postqueue). With --json each print is one JSON document on one line (NDJSON), for scripts that
/// read line by line.
/// </summary>
internal sealed class StatusWatchOptions
{
    public Option<bool> Watch { get; } = new("--watch") { Description = "Print again every --interval until Ctrl-C (with --json: one JSON document per line)." };

    public Option<TimeSpan?> Interval { get; } = new("--interval") { Description = "Time between prints with --watch (default 2s; 1s at least).", CustomParser = OperatorDuration.Parse };

    /// <summary>Stops after this many prints: for tests and scripts that want a few samples.</summary>
    public Option<int?> Iterations { get; } = new("--iterations") { Description = "Stop after this many prints.", Hidden = true };

    public void AddTo(Command command)
    {
        command.Options.Add(Watch);
        command.Options.Add(Interval);
        command.Options.Add(Iterations);
    }

    /// <summary>Runs <paramref name="print"/> once, or with --watch until cancelled (Ctrl-C) or --iterations prints; the exit code is the last print's.</summary>
    public async Task<int> RunAsync(ParseResult parse, TimeProvider time, TextWriter output, bool json, Func<bool, Task<int>> print, CancellationToken cancellationToken)
    {
        if (!parse.GetValue(Watch))
        {
            return await print(false);
        }
        var interval = parse.GetValue(Interval) is { } given && given >= TimeSpan.FromSeconds(1) ? given : parse.GetResult(Interval) is null ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(1);
        var left = parse.GetValue(Iterations) ?? int.MaxValue;
        var exit = 0;
        try
        {
            while (left-- > 0 && !cancellationToken.IsCancellationRequested)
            {
                if (!json)
                {
                    // Text prints are told apart by their time; JSON lines are one document each already.
                    await output.WriteLineAsync($"-- {time.GetUtcNow():u}");
                }
                exit = await print(true);
                await output.FlushAsync(cancellationToken);
                if (left > 0)
                {
                    await Task.Delay(interval, time, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl-C ends a watch: that is how it is meant to stop, not a failure.
        }
        return exit;
    }
}
