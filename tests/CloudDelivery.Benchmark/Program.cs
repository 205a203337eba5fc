using System.Diagnostics;
using System.Globalization;
using System.Net;
using CloudDelivery.Loopback.Smtp;

// Engine benchmark: N messages of S bytes to M domains through the delivery engine into a loopback sink,
// printing messages/second, CPU seconds and peak memory. With Postfix's tools installed it also measures
// smtp-source blasting into smtp-sink (the loopback limit) and uses smtp-sink as the sink of our engine,
// so both figures come from the same machine and the same sink.
var settings = BenchmarkSettings.Parse(args);
if (args.Contains("--sink-only"))
{
    // A receiver in its own process for postfix-queue.sh: Postfix's smtp client and the engine then meet the
    // same STARTTLS sink, one that is faster than a Postfix smtpd proxying into smtp-sink, so the clients are
    // what is measured. Runs until stdin closes.
    await using var receiver = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions
    {
        Address = IPAddress.Loopback,
        Port = settings.SinkPort ?? 0,
        KeepMessages = false,
        Hostname = "sink.bench.test",
        AdvertiseStartTls = settings.Tls,
        Certificate = settings.Tls ? BenchmarkCertificates.SelfSigned("sink.bench.test", settings.Rsa) : null,
    });
    Console.WriteLine($"sink listening on 127.0.0.1:{receiver.EndPoint.Port} ({settings.Transport})");
    await Console.In.ReadToEndAsync();
    return 0;
}

Console.WriteLine($"CloudDelivery engine benchmark: {settings.Messages} messages x {settings.Size} bytes to {settings.Domains} domains, {settings.Concurrency} domains in parallel");

var postfix = PostfixTools.Find();
int sinkPort;
Process? postfixSink = null;
LoopbackSmtpServer? ownSink = null;
if (settings.SinkPort is { } externalSink)
{
    // A sink someone else runs: postfix-tls.sh puts a STARTTLS-offering Postfix smtpd in front of smtp-sink
    // and points both Postfix's smtp client and this benchmark at it, so both meet the same receiver.
    sinkPort = externalSink;
    Console.WriteLine($"sink: the receiver already listening on 127.0.0.1:{sinkPort}");
}
else if (postfix is not null && !settings.OwnSink && !settings.Tls)
{
    sinkPort = LoopbackPorts.Free();
    postfixSink = postfix.StartSink(sinkPort);
    await Task.Delay(500);
    var limit = postfix.MeasureSource(sinkPort, settings);
    Console.WriteLine($"loopback limit (smtp-source -> smtp-sink): {limit:F0} messages/s");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT mode=loopback-limit variant=plain rate={limit:F0} cpu_us=- peak_mib=- tx=-"));
    Console.WriteLine($"sink: Postfix smtp-sink on 127.0.0.1:{sinkPort}");
}
else
{
    // smtp-sink cannot offer STARTTLS; with --tls the in-process sink does, with a self-signed certificate
    // (opportunistic TLS does not verify it: RFC 7435 §2, RFC 7672 §1.3), ECDSA P-256 or with --rsa RSA-2048.
    ownSink = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions
    {
        Address = IPAddress.Loopback,
        KeepMessages = false,
        Hostname = "sink.bench.test",
        AdvertiseStartTls = settings.Tls,
        Certificate = settings.Tls ? BenchmarkCertificates.SelfSigned("sink.bench.test", settings.Rsa) : null,
    });
    sinkPort = ownSink.EndPoint.Port;
    Console.WriteLine(postfix is null
        ? "Postfix's smtp-source/smtp-sink not found (apt-get install postfix): no loopback limit measured; sink: CloudDelivery.Loopback SMTP server"
        : "sink: CloudDelivery.Loopback SMTP server");
}

// One mode per run (its own process, so peak working set is the mode's own); each mode lives in its own file.
using var allocations = args.Contains("--alloc-profile") ? new AllocationSampler() : null;
using var jit = args.Contains("--jit-profile") ? new JitSampler() : null;
var status = args.Contains("--end-to-end") ? await EndToEndBenchmark.RunAsync(settings, sinkPort)
    : args.Contains("--cold") ? await ColdBenchmark.RunAsync(settings, sinkPort)
    : args.Contains("--backlog") ? await BacklogBenchmark.RunAsync(settings, sinkPort, args)
    : args.Contains("--http") ? await HttpBenchmark.RunAsync(settings, sinkPort, args)
    : args.Contains("--tarpit") ? await TarpitBenchmark.RunAsync(settings, sinkPort)
    : args.Contains("--hot-domain") ? await HotDomainBenchmark.RunAsync(settings, sinkPort, args)
    : await EngineBenchmark.RunAsync(settings, sinkPort);
allocations?.Print(settings.Messages);
jit?.Print();
postfixSink?.Kill(entireProcessTree: true);
if (ownSink is not null)
{
    await ownSink.DisposeAsync();
}
return status;


internal sealed record BenchmarkSettings(int Messages, int Domains, int Size, int Concurrency, bool OwnSink, int WakeUpWindowMs, bool Events = false)
{
    /// <summary>--tls: the sink offers STARTTLS, so every connection negotiates TLS (1.3 where both ends have it).</summary>
    public bool Tls { get; init; }

    /// <summary>--rsa: the sink's certificate is RSA-2048 instead of ECDSA P-256.</summary>
    public bool Rsa { get; init; }

    /// <summary>--sink-port P: deliver to a receiver already listening on 127.0.0.1:P instead of starting one.</summary>
    public int? SinkPort { get; init; }

    /// <summary>
    /// --warm-up N (default 1,000; 0: none): the storage modes first deliver passes of N messages to other
    /// domains through the same process, unmeasured, until the JIT is nearly quiet (see StorageWarmUp), so
    /// the measured run is the running service's and not its start (tiering up a fresh process cost about a
    /// third of the CPU of a 5,000-message HTTP run).
    /// </summary>
    public int WarmUp { get; init; }

    /// <summary>The transport variant printed in RESULT lines: plain, tls-ecdsa or tls-rsa.</summary>
    public string Transport => Tls ? (Rsa ? "tls-rsa" : "tls-ecdsa") : "plain";

    public static BenchmarkSettings Parse(string[] args)
    {
        int Value(string name, int fallback)
        {
            var index = Array.IndexOf(args, name);
            return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
        }
        var sinkPort = Value("--sink-port", 0);
        return new BenchmarkSettings(Value("--messages", 5000), Value("--domains", 50), Value("--size", 2048), Value("--concurrency", 50), args.Contains("--own-sink"), Value("--wake-up-window-ms", 2000), args.Contains("--events"))
        {
            Tls = args.Contains("--tls"),
            Rsa = args.Contains("--rsa"),
            SinkPort = sinkPort > 0 ? sinkPort : null,
            WarmUp = Value("--warm-up", 1000),
        };
    }
}

/// <summary>Postfix's test tools from Debian's postfix package, if installed.</summary>
internal sealed class PostfixTools(string source, string sink)
{
    public static PostfixTools? Find()
    {
        string[] directories = ["/usr/sbin", "/usr/lib/postfix/sbin", "/usr/libexec/postfix"];
        var source = directories.Select(d => Path.Combine(d, "smtp-source")).FirstOrDefault(File.Exists);
        var sink = directories.Select(d => Path.Combine(d, "smtp-sink")).FirstOrDefault(File.Exists);
        return source is null || sink is null ? null : new PostfixTools(source, sink);
    }

    /// <summary>smtp-sink: accepts and discards; -c counts, backlog 1000.</summary>
    public Process StartSink(int port) =>
        Process.Start(new ProcessStartInfo(sink, $"-u root 127.0.0.1:{port} 1000") { RedirectStandardOutput = true, RedirectStandardError = true })!;

    /// <summary>Runs smtp-source with 20 parallel sessions and messages of the same size; the best of three runs.</summary>
    public double MeasureSource(int port, BenchmarkSettings settings)
    {
        var best = 0.0;
        for (var run = 0; run < 3; run++)
        {
            var clock = Stopwatch.StartNew();
            using var process = Process.Start(new ProcessStartInfo(source, $"-s 20 -m {settings.Messages} -l {settings.Size} -f bench@sender.bench.test -t user@bench.example 127.0.0.1:{port}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            process.WaitForExit();
            clock.Stop();
            best = Math.Max(best, settings.Messages / clock.Elapsed.TotalSeconds);
        }
        return best;
    }
}
