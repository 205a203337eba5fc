using System.Diagnostics;
using System.Globalization;
using CloudDelivery.Azure.Storage;

/// <summary>
/// One measured stretch of a benchmark: wall time, this process's CPU time, allocations and storage
/// transactions between <see cref="Start"/> and <see cref="Stop"/>. Every mode reports through it, so all
/// print the same figures in the same words, and one machine-readable RESULT line that
/// <c>run-all.sh</c> collects into the README table.
/// </summary>
internal sealed class Measurement
{
    private readonly Stopwatch clock;
    private readonly TimeSpan cpuBefore;
    private readonly long allocatedBefore;
    private readonly StorageTransactionCounter? storage;
    private readonly long transactionsBefore;
    private readonly Dictionary<string, long> byServiceBefore;
    private readonly long jittedBefore;
    private readonly TimeSpan jitTimeBefore;

    private readonly Timer workingSetSampler;
    private long workingSetDuringRun;

    private Measurement(StorageTransactionCounter? storage)
    {
        // Aggressive: memory a mode's preparation used (the backlog's 100,000 records) is given back, so the
        // working set sampled during the run is the run's own.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        workingSetDuringRun = Environment.WorkingSet;
        workingSetSampler = new Timer(_ => InterlockedMax(ref workingSetDuringRun, Environment.WorkingSet), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(50));
        this.storage = storage;
        transactionsBefore = storage?.Count ?? 0;
        byServiceBefore = storage?.ByService.ToDictionary(p => p.Key, p => p.Value) ?? [];
        allocatedBefore = GC.GetTotalAllocatedBytes();
        jittedBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
        jitTimeBefore = System.Runtime.JitInfo.GetCompilationTime();
        cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        clock = Stopwatch.StartNew();
    }

    /// <summary>Starts measuring; with <paramref name="storage"/>, its transactions are counted too.</summary>
    public static Measurement Start(StorageTransactionCounter? storage = null) => new(storage);

    /// <summary>Stops and returns the figures for <paramref name="messages"/> messages handled.</summary>
    public MeasuredRun Stop(long messages)
    {
        clock.Stop();
        workingSetSampler.Dispose();
        InterlockedMax(ref workingSetDuringRun, Environment.WorkingSet);
        using var process = Process.GetCurrentProcess();
        return new MeasuredRun(
            messages,
            clock.Elapsed,
            process.TotalProcessorTime - cpuBefore,
            process.PeakWorkingSet64,
            GC.GetTotalAllocatedBytes() - allocatedBefore,
            storage is null ? null : storage.Count - transactionsBefore,
            storage?.ByService.ToDictionary(p => p.Key, p => p.Value - byServiceBefore.GetValueOrDefault(p.Key)))
        {
            WorkingSetDuringRun = Interlocked.Read(ref workingSetDuringRun),
            MethodsJitted = System.Runtime.JitInfo.GetCompiledMethodCount() - jittedBefore,
            JitTime = System.Runtime.JitInfo.GetCompilationTime() - jitTimeBefore,
        };
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }
}

/// <summary>What one measured stretch gave.</summary>
internal sealed record MeasuredRun(long Messages, TimeSpan Elapsed, TimeSpan Cpu, long PeakWorkingSet, long Allocated, long? StorageTransactions, IReadOnlyDictionary<string, long>? TransactionsByService = null)
{
    /// <summary>The largest working set sampled (every 50 ms) between Start and Stop: unlike <see cref="PeakWorkingSet"/>, not what came before.</summary>
    public long WorkingSetDuringRun { get; init; }

    /// <summary>
    /// Methods the JIT compiled during the run (tier-1 recompilations included) and the time it took: a run
    /// that keeps compiling after its warm-up is generating code (expression trees, dynamic methods) per call.
    /// </summary>
    public long MethodsJitted { get; init; }

    public TimeSpan JitTime { get; init; }

    public double MessagesPerSecond => Messages / Math.Max(Elapsed.TotalSeconds, 1e-9);

    public double CpuMicrosecondsPerMessage => Cpu.TotalMilliseconds * 1000 / Math.Max(1, Messages);

    public double? TransactionsPerMessage => StorageTransactions is { } n ? (double)n / Math.Max(1, Messages) : null;

    /// <summary>
    /// Prints the human line and the RESULT line: <c>RESULT mode=… variant=… rate=… cpu_us=… peak_mib=… tx=…</c>
    /// (tx is "-" without storage). <paramref name="variant"/> names the run within the mode ("ecdsa", "k4"…);
    /// an unmeasured pass (a warm-up) prints the human line alone.
    /// </summary>
    public void Print(string mode, string variant, string? note = null, bool resultLine = true)
    {
        var tx = TransactionsPerMessage is { } t ? string.Create(CultureInfo.InvariantCulture, $", {t:F2} storage transactions/message") : string.Empty;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{mode} {variant}: {Messages} messages in {Elapsed.TotalSeconds:F2} s: {MessagesPerSecond:F0} messages/s, CPU {CpuMicrosecondsPerMessage:F0} µs/message, peak working set {PeakWorkingSet / 1048576} MiB ({WorkingSetDuringRun / 1048576} MiB at most during the run), allocated {Allocated / Math.Max(1, Messages) / 1024} KiB/message, {MethodsJitted} methods jitted in {JitTime.TotalMilliseconds:F0} ms{tx}{(note is null ? string.Empty : "; " + note)}"));
        if (!resultLine)
        {
            return;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RESULT mode={mode} variant={variant} rate={MessagesPerSecond:F0} cpu_us={CpuMicrosecondsPerMessage:F0} peak_mib={PeakWorkingSet / 1048576} tx={(TransactionsPerMessage is { } v ? v.ToString("F2", CultureInfo.InvariantCulture) : "-")}"));
    }
}
