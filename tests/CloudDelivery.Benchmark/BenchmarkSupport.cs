using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

/// <summary>The benchmark's message: headers and lines of text to exactly the asked size, CRLF-terminated.</summary>
internal static class BenchmarkMessages
{
    public static byte[] Make(int size)
    {
        var header = "From: <bench@sender.bench.test>\r\nTo: <user@bench.example>\r\nSubject: benchmark\r\nMessage-ID: <bench@sender.bench.test>\r\n\r\n";
        var text = new StringBuilder(header);
        while (text.Length < size - 2)
        {
            text.Append("The quick brown fox jumps over the lazy dog 0123456789.\r\n");
        }
        return Encoding.ASCII.GetBytes(text.ToString()[..(size - 2)] + "\r\n");
    }
}

internal static class LoopbackPorts
{
    /// <summary>A TCP port free on 127.0.0.1 right now.</summary>
    public static int Free()
    {
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>Certificates for the benchmark's STARTTLS sink.</summary>
internal static class BenchmarkCertificates
{
    /// <summary>A self-signed server certificate for <paramref name="dnsName"/>: ECDSA P-256, or RSA-2048 when <paramref name="rsa"/>.</summary>
    public static X509Certificate2 SelfSigned(string dnsName, bool rsa)
    {
        using AsymmetricAlgorithm key = rsa
            ? RSA.Create(2048)
            : ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = key is RSA rsaKey
            ? new CertificateRequest($"CN={dnsName}", rsaKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest($"CN={dnsName}", (ECDsa)key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(dnsName);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(7));
        // The platform TLS stack wants the key attached and exportable: a PKCS#12 round trip gives it that.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>
/// Deliveries counted from the service's own metric (<c>clouddelivery.recipients</c>, result=delivered), so
/// watching a run through storage costs the storage nothing.
/// </summary>
internal sealed class DeliveredCounter : IDisposable
{
    private readonly System.Diagnostics.Metrics.MeterListener listener = new();
    private long count;

    public DeliveredCounter(System.Diagnostics.Metrics.Meter meter)
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == meter && instrument.Name == "clouddelivery.recipients")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "result" && (string?)tag.Value == "delivered")
                {
                    var now = Interlocked.Add(ref count, value);
                    lock (waiters)
                    {
                        waiters.RemoveAll(w => now >= w.Target && w.Reached.TrySetResult());
                    }
                }
            }
        });
        listener.Start();
    }

    public long Count => Interlocked.Read(ref count);

    /// <summary>
    /// Waits until <paramref name="target"/> deliveries were counted, or <paramref name="timeout"/>. Signalled
    /// by the delivery itself, not polled: a poll every few milliseconds is a wake-up of its own, and over a
    /// long run it would be counted as the service's CPU.
    /// </summary>
    public async Task WaitForAsync(long target, TimeSpan timeout)
    {
        var waiter = (Target: target, Reached: new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (waiters)
        {
            if (Count >= target)
            {
                return;
            }
            waiters.Add(waiter);
        }
        await Task.WhenAny(waiter.Reached.Task, Task.Delay(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero));
    }

    private readonly List<(long Target, TaskCompletionSource Reached)> waiters = [];

    public void Dispose() => listener.Dispose();
}

/// <summary>What the engine-alone modes share: the warm domains' zone and delivery under a concurrency gate.</summary>
internal static class BenchmarkEngine
{
    /// <summary>Domains d0…d(n-1).bench.example (or <paramref name="prefix"/>0…), each with its own MX host on 127.0.0.1.</summary>
    public static CloudDelivery.Loopback.Dns.DnsZone AddWarmDomains(this CloudDelivery.Loopback.Dns.DnsZone zone, int domains, string prefix = "d")
    {
        for (var d = 0; d < domains; d++)
        {
            zone.AddMx($"{prefix}{d}.bench.example", 10, $"mx.{prefix}{d}.bench.example").AddA($"mx.{prefix}{d}.bench.example", "127.0.0.1");
        }
        return zone;
    }

    /// <summary>Delivers every request, at most <paramref name="concurrency"/> domains at a time.</summary>
    public static async Task<CloudDelivery.Delivery.DeliveryOutcome[]> DeliverAllAsync(CloudDelivery.Delivery.DeliveryEngine engine, IEnumerable<CloudDelivery.Delivery.DeliveryRequest> requests, int concurrency)
    {
        using var gate = new SemaphoreSlim(concurrency);
        return await Task.WhenAll(requests.Select(async request =>
        {
            await gate.WaitAsync();
            try
            {
                return await engine.DeliverAsync(request, CancellationToken.None);
            }
            finally
            {
                gate.Release();
            }
        }));
    }
}

/// <summary>
/// A tally of one kind of the runtime's own events (Microsoft-Windows-DotNETRuntime), by a key each event
/// names: what <c>--alloc-profile</c> and <c>--jit-profile</c> share. The keywords and the event are
/// abstract properties, not constructor arguments: the base listener announces existing event sources
/// from its constructor, before a derived constructor could have set a field.
/// </summary>
internal abstract class RuntimeEventTally : System.Diagnostics.Tracing.EventListener
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> byKey = new(StringComparer.Ordinal);
    private long total;

    /// <summary>The runtime's keywords to enable (written at Verbose).</summary>
    protected abstract long Keywords { get; }

    /// <summary>The event counted: its name starts with this (the versions add "_V1"…).</summary>
    protected abstract string EventName { get; }

    protected long Total => Interlocked.Read(ref total);

    /// <summary>The key and amount an event adds, or null when its payload lacks them.</summary>
    protected abstract (string Key, long Amount)? Read(System.Collections.ObjectModel.ReadOnlyCollection<string> names, System.Collections.ObjectModel.ReadOnlyCollection<object?> payload);

    protected IEnumerable<KeyValuePair<string, long>> Largest(int top) => byKey.OrderByDescending(p => p.Value).Take(top);

    protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, System.Diagnostics.Tracing.EventLevel.Verbose, (System.Diagnostics.Tracing.EventKeywords)Keywords);
        }
    }

    protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs eventData)
    {
        if (eventData.EventName?.StartsWith(EventName, StringComparison.Ordinal) != true || eventData.PayloadNames is not { } names || eventData.Payload is not { } payload || Read(names, payload) is not { } item)
        {
            return;
        }
        byKey.AddOrUpdate(item.Key, item.Amount, (_, sum) => sum + item.Amount);
        Interlocked.Add(ref total, item.Amount);
    }
}

/// <summary>
/// --alloc-profile: what a run allocates, by type, from the runtime's own sampling (the GCAllocationTick
/// event, one per about 100 KB allocated, naming the type that crossed the mark), printed after the mode.
/// A sample, not an exact count, and types rather than call sites; enough to see which buffers dominate.
/// </summary>
internal sealed class AllocationSampler : RuntimeEventTally
{
    /// <summary>Keyword 0x1 is GC.</summary>
    protected override long Keywords => 0x1;

    protected override string EventName => "GCAllocationTick";

    protected override (string Key, long Amount)? Read(System.Collections.ObjectModel.ReadOnlyCollection<string> names, System.Collections.ObjectModel.ReadOnlyCollection<object?> payload)
    {
        var typeIndex = names.IndexOf("TypeName");
        var amountIndex = names.IndexOf("AllocationAmount64");
        return typeIndex < 0 || amountIndex < 0 ? null : (payload[typeIndex] as string ?? "?", Convert.ToInt64(payload[amountIndex], System.Globalization.CultureInfo.InvariantCulture));
    }

    public void Print(long messages, int top = 20)
    {
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"allocations sampled: {Total / 1048576} MiB, {Total / Math.Max(1, messages) / 1024} KiB/message; by type:"));
        foreach (var (type, bytes) in Largest(top))
        {
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {bytes * 100.0 / Math.Max(1, Total),5:F1} %  {bytes / Math.Max(1, messages) / 1024,6} KiB/message  {type}"));
        }
    }
}

/// <summary>
/// <c>--jit-profile</c>: which methods the JIT compiles, counted by name from the runtime's JIT events. A
/// warm process that keeps compiling is generating code per call (expression trees, dynamic methods).
/// </summary>
internal sealed class JitSampler : RuntimeEventTally
{
    /// <summary>Keyword 0x10 is JIT.</summary>
    protected override long Keywords => 0x10;

    protected override string EventName => "MethodJittingStarted";

    protected override (string Key, long Amount)? Read(System.Collections.ObjectModel.ReadOnlyCollection<string> names, System.Collections.ObjectModel.ReadOnlyCollection<object?> payload)
    {
        var ns = names.IndexOf("MethodNamespace") is var n and >= 0 ? payload[n] as string : null;
        var name = names.IndexOf("MethodName") is var m and >= 0 ? payload[m] as string : null;
        return ($"{ns}::{name}", 1);
    }

    public void Print(int top = 25)
    {
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"methods jitted: {Total}; most often:"));
        foreach (var (method, count) in Largest(top))
        {
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {count,6}  {method}"));
        }
    }
}

/// <summary>
/// The storage modes' warm-up (<c>--warm-up N</c>): passes of N messages to domains of their own
/// (w0…w(n-1).bench.example) through the same process, unmeasured, until a pass leaves the JIT nearly quiet
/// (a fresh process keeps tiering methods up for tens of seconds of work), at most ten passes. Then their
/// records are deleted, so the emulator's table, whose queries slow as it grows, is as a cold run finds it.
/// </summary>
internal static class StorageWarmUp
{
    private const int MaxPasses = 10;

    /// <summary>A pass that compiled fewer methods than this is taken as warm.</summary>
    private const int QuietJit = 300;

    public static async Task RunAsync(BenchmarkSettings settings, CloudDelivery.Azure.Storage.OutboundStorage storage, string connectionString, string label, Func<int, Task> passAsync)
    {
        if (settings.WarmUp <= 0)
        {
            return;
        }
        for (var pass = 1; pass <= MaxPasses; pass++)
        {
            var measurement = Measurement.Start(storage.Counter);
            await passAsync(settings.WarmUp);
            var run = measurement.Stop(settings.WarmUp);
            run.Print($"{label} warm-up pass {pass} (not counted)", settings.Transport, resultLine: false);
            if (run.MethodsJitted < QuietJit)
            {
                break;
            }
        }
        // Not counted: the benchmark's own clean-up, with a client of its own.
        var table = new Azure.Data.Tables.TableClient(connectionString, storage.Options.RecipientsTable);
        var entities = new List<Azure.Data.Tables.TableEntity>();
        await foreach (var entity in table.QueryAsync<Azure.Data.Tables.TableEntity>("PartitionKey ge 'w' and PartitionKey lt 'x'", select: ["PartitionKey", "RowKey"]))
        {
            entities.Add(entity);
        }
        foreach (var partition in entities.GroupBy(e => e.PartitionKey))
        {
            foreach (var chunk in partition.Chunk(100))
            {
                await table.SubmitTransactionAsync(chunk.Select(e => new Azure.Data.Tables.TableTransactionAction(Azure.Data.Tables.TableTransactionActionType.Delete, e, Azure.ETag.All)));
            }
        }
    }
}

/// <summary>
/// The storage transactions by kind since it was taken (<c>table POST batch</c>, <c>queue POST messages</c>…),
/// so a mode's printout and cost figures are its measured run's, not its warm-up's too.
/// </summary>
internal sealed class TransactionKindsSince(CloudDelivery.Azure.Storage.StorageTransactionCounter counter)
{
    private readonly Dictionary<string, long> before = counter.ByKind.ToDictionary(k => k.Key, k => k.Value);

    public long this[string kind] => counter.ByKind.GetValueOrDefault(kind) - before.GetValueOrDefault(kind);

    /// <summary>One line per kind that occurred, most frequent first, with its share per message.</summary>
    public void Print(long messages)
    {
        foreach (var (kind, n) in counter.ByKind.Keys.Select(kind => (kind, this[kind])).Where(k => k.Item2 > 0).OrderByDescending(k => k.Item2))
        {
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {kind}: {n} ({(double)n / Math.Max(1, messages):F2}/message)"));
        }
    }
}
