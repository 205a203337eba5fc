using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using CloudDelivery.Addressing;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Dns;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Messages;

// Engine benchmark: N messages of S bytes to M domains through the delivery engine into a loopback sink,
// printing messages/second, CPU seconds and peak memory. With Postfix's tools installed it also measures
// smtp-source blasting into smtp-sink (the loopback limit) and uses smtp-sink as the sink of our engine,
// so both figures come from the same machine and the same sink.
var settings = BenchmarkSettings.Parse(args);
Console.WriteLine($"CloudDelivery engine benchmark: {settings.Messages} messages x {settings.Size} bytes to {settings.Domains} domains, {settings.Concurrency} domains in parallel");

var postfix = PostfixTools.Find();
int sinkPort;
Process? postfixSink = null;
LoopbackSmtpServer? ownSink = null;
if (postfix is not null && !settings.OwnSink)
{
    sinkPort = FreePort();
    postfixSink = postfix.StartSink(sinkPort);
    await Task.Delay(500);
    var limit = postfix.MeasureSource(sinkPort, settings);
    Console.WriteLine($"loopback limit (smtp-source -> smtp-sink): {limit:F0} messages/s");
    Console.WriteLine($"sink: Postfix smtp-sink on 127.0.0.1:{sinkPort}");
}
else
{
    ownSink = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions { Address = IPAddress.Loopback, KeepMessages = false, Hostname = "sink.bench.test" });
    sinkPort = ownSink.EndPoint.Port;
    Console.WriteLine(postfix is null
        ? "Postfix's smtp-source/smtp-sink not found (apt-get install postfix): no loopback limit measured; sink: CloudDelivery.Loopback SMTP server"
        : "sink: CloudDelivery.Loopback SMTP server");
}

if (args.Contains("--end-to-end"))
{
    var status = await EndToEndBenchmark.RunAsync(settings, sinkPort);
    postfixSink?.Kill(entireProcessTree: true);
    if (ownSink is not null)
    {
        await ownSink.DisposeAsync();
    }
    return status;
}

var zone = new DnsZone();
for (var d = 0; d < settings.Domains; d++)
{
    zone.AddMx($"d{d}.bench.example", 10, $"mx.d{d}.bench.example").AddA($"mx.d{d}.bench.example", "127.0.0.1");
}
await using var dns = await LoopbackDnsServer.StartAsync(zone);
using var engine = DeliveryEngine.Create(
    new DeliveryEngineOptions { EhloHostname = "bench.loopback.test", SmtpPort = sinkPort, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate },
    new CloudDelivery.Dns.DnsResolverOptions { Server = dns.EndPoint },
    new CloudDelivery.MtaSts.MtaStsFetchOptions { HttpsPort = 1, AddressPolicy = CloudDelivery.Dialing.AddressPolicy.AllowPrivate }); // nothing listens on port 1; no domain publishes MTA-STS

var body = MakeMessage(settings.Size);
var requests = Enumerable.Range(0, settings.Domains).Select(d => new DeliveryRequest
{
    Destination = NextHop.Parse($"d{d}.bench.example"),
    Messages = Enumerable.Range(0, settings.Messages / settings.Domains + (d < settings.Messages % settings.Domains ? 1 : 0)).Select(i => new OutboundMessage
    {
        Id = $"{d}-{i}",
        Sender = EmailAddress.Parse("bench@sender.bench.test"),
        Recipients = [EmailAddress.Parse($"user{i}@d{d}.bench.example")],
        Body = MessageBody.FromBytes(body),
    }).ToArray(),
}).ToArray();

var process = Process.GetCurrentProcess();
GC.Collect();
var cpuBefore = process.TotalProcessorTime;
var allocatedBefore = GC.GetTotalAllocatedBytes();
var clock = Stopwatch.StartNew();
using var gate = new SemaphoreSlim(settings.Concurrency);
var outcomes = await Task.WhenAll(requests.Select(async request =>
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
clock.Stop();
process.Refresh();
var cpu = process.TotalProcessorTime - cpuBefore;
var delivered = outcomes.Sum(o => o.Recipients.Count(r => r.Status == RecipientStatus.Delivered));
var connections = outcomes.Sum(o => o.Connections.Count);
var rate = delivered / clock.Elapsed.TotalSeconds;

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"delivered {delivered}/{settings.Messages} in {clock.Elapsed.TotalSeconds:F2} s over {connections} connections"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"engine: {rate:F0} messages/s, CPU {cpu.TotalSeconds:F2} s ({cpu.TotalMilliseconds * 1000 / Math.Max(1, delivered):F0} µs/message), peak working set {process.PeakWorkingSet64 / 1048576} MiB, allocated {(GC.GetTotalAllocatedBytes() - allocatedBefore) / Math.Max(1, delivered) / 1024} KiB/message"));
if (delivered != settings.Messages)
{
    var sample = outcomes.SelectMany(o => o.Recipients).First(r => r.Status != RecipientStatus.Delivered);
    Console.WriteLine($"not delivered, e.g.: {sample.Recipient}: {sample.Reply}");
}

postfixSink?.Kill(entireProcessTree: true);
if (ownSink is not null)
{
    await ownSink.DisposeAsync();
}
return delivered == settings.Messages ? 0 : 1;

static byte[] MakeMessage(int size)
{
    var header = "From: <bench@sender.bench.test>\r\nTo: <user@bench.example>\r\nSubject: benchmark\r\nMessage-ID: <bench@sender.bench.test>\r\n\r\n";
    var text = new StringBuilder(header);
    while (text.Length < size - 2)
    {
        text.Append("The quick brown fox jumps over the lazy dog 0123456789.\r\n");
    }
    return Encoding.ASCII.GetBytes(text.ToString()[..(size - 2)] + "\r\n");
}

static int FreePort()
{
    var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
    listener.Start();
    var port = ((IPEndPoint)listener.LocalEndpoint).Port;
    listener.Stop();
    return port;
}

internal sealed record BenchmarkSettings(int Messages, int Domains, int Size, int Concurrency, bool OwnSink, int WakeUpWindowMs, bool Events = false)
{
    public static BenchmarkSettings Parse(string[] args)
    {
        int Value(string name, int fallback)
        {
            var index = Array.IndexOf(args, name);
            return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
        }
        return new BenchmarkSettings(Value("--messages", 5000), Value("--domains", 50), Value("--size", 2048), Value("--concurrency", 50), args.Contains("--own-sink"), Value("--wake-up-window-ms", 2000), args.Contains("--events"));
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
