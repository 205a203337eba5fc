using System.Globalization;

/// <summary>
/// The Azure cost of a million messages from what a run measured: storage transactions by service, CPU
/// per message (which sets the Flex Consumption GB-seconds), executions, and bytes out through the NAT
/// gateway. Unit prices are list prices (USD, pay-as-you-go, East US, Standard LRS); README's "Cost per
/// million messages" gives where and when they were read. Change them here when Azure does.
/// </summary>
internal static class CostModel
{
    /// <summary>Table Storage: every operation, a batch of up to 100 entities being one ($0.00036 per 10,000).</summary>
    public const double TablePerTransaction = 0.00036 / 10_000;

    /// <summary>Queue Storage (GPv2): class 1 and class 2 operations ($0.004 per 10,000).</summary>
    public const double QueuePerOperation = 0.004 / 10_000;

    /// <summary>Blob Storage, hot tier: writes ($0.05 per 10,000; reads are $0.004, counted as writes here: an upper bound).</summary>
    public const double BlobPerWrite = 0.05 / 10_000;

    /// <summary>Flex Consumption on-demand: memory while executing ($0.000026 per GB-second).</summary>
    public const double FlexPerGbSecond = 0.000026;

    /// <summary>Flex Consumption on-demand executions ($0.40 per million).</summary>
    public const double FlexPerExecution = 0.40 / 1_000_000;

    /// <summary>NAT gateway: data processed ($0.045 per GB).</summary>
    public const double NatPerGb = 0.045;

    /// <summary>Internet egress from Azure (first 10 TB tier, $0.087 per GB; the first 100 GB a month are free).</summary>
    public const double EgressPerGb = 0.087;

    /// <summary>Log Analytics analytics-tier ingestion ($2.30 per GB): one RecipientResult record per outcome.</summary>
    public const double LogsPerGb = 2.30;

    /// <summary>Azure Communication Services Email: $0.00025 per email plus $0.00012 per MB.</summary>
    public const double AcsPerEmail = 0.00025;

    public const double AcsPerMegabyte = 0.00012;

    /// <summary>Amazon SES outbound: $0.10 per 1,000 emails (plus $0.12 per GB of attachments, not counted here).</summary>
    public const double SesPerEmail = 0.10 / 1_000;

    /// <summary>The Bicep default instance memory (infra-bicep/main.bicep instanceMemoryMB = 2048: one vCPU).</summary>
    public const double InstanceGigabytes = 2.0;

    /// <summary>
    /// Prints the cost of a million messages like the run's: per line item, then the total next to ACS Email
    /// and SES. <paramref name="executionsPerMessage"/>: Functions executions a message costs (1 for its
    /// HTTP submission when submitted over HTTP, plus its share of queue-triggered wake-ups).
    /// <paramref name="utilisation"/>: the share of an active instance's vCPU the work keeps busy; an
    /// instance waiting on remote servers is billed while it waits, so real deployments sit below 1.
    /// </summary>
    public static void Print(MeasuredRun run, int messageBytes, double executionsPerMessage, double utilisation = 0.5)
    {
        const double million = 1_000_000;
        var byService = run.TransactionsByService ?? new Dictionary<string, long>();
        double PerMessage(string service) => (double)byService.GetValueOrDefault(service) / Math.Max(1, run.Messages);
        var table = PerMessage("table") * million * TablePerTransaction;
        var queue = PerMessage("queue") * million * QueuePerOperation;
        var blob = PerMessage("blob") * million * BlobPerWrite;
        // One vCPU per 2 GB instance: instance-seconds per message = CPU seconds per message / utilisation.
        var gbSeconds = run.CpuMicrosecondsPerMessage / 1e6 / utilisation * InstanceGigabytes * million;
        var compute = gbSeconds * FlexPerGbSecond;
        var executions = executionsPerMessage * million * FlexPerExecution;
        // Bytes on the wire per message: the message, SMTP dialogue and TLS records (~1.5 KiB), and a share of
        // handshakes (a few KiB each, amortised over the connection's messages; counted as 1 KiB).
        var gigabytes = (messageBytes + 2560.0) * million / (1024.0 * 1024 * 1024);
        var nat = gigabytes * NatPerGb;
        var egress = gigabytes * EgressPerGb;
        var logs = 1024.0 * million / (1024.0 * 1024 * 1024) * LogsPerGb; // ~1 KiB per RecipientResult record
        var total = table + queue + blob + compute + executions + nat + egress + logs;
        var acs = (AcsPerEmail * million) + (messageBytes * million / (1024.0 * 1024) * AcsPerMegabyte);
        var ses = SesPerEmail * million;
        string Line(string what, double dollars, string basis) => string.Create(CultureInfo.InvariantCulture, $"  {what,-34} ${dollars,8:F2}  {basis}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cost per million messages of {messageBytes} bytes (list prices, see README):"));
        Console.WriteLine(Line("table transactions", table, string.Create(CultureInfo.InvariantCulture, $"{PerMessage("table"):F2}/message")));
        Console.WriteLine(Line("queue operations", queue, string.Create(CultureInfo.InvariantCulture, $"{PerMessage("queue"):F2}/message")));
        Console.WriteLine(Line("blob operations", blob, string.Create(CultureInfo.InvariantCulture, $"{PerMessage("blob"):F2}/message")));
        Console.WriteLine(Line("Flex GB-seconds", compute, string.Create(CultureInfo.InvariantCulture, $"{gbSeconds:F0} GB-s at {run.CpuMicrosecondsPerMessage:F0} µs CPU/message, {utilisation:P0} busy, {InstanceGigabytes} GB instance")));
        Console.WriteLine(Line("Flex executions", executions, string.Create(CultureInfo.InvariantCulture, $"{executionsPerMessage:F2}/message")));
        Console.WriteLine(Line("NAT gateway data", nat, string.Create(CultureInfo.InvariantCulture, $"{gigabytes:F1} GB")));
        Console.WriteLine(Line("internet egress", egress, string.Create(CultureInfo.InvariantCulture, $"{gigabytes:F1} GB")));
        Console.WriteLine(Line("Log Analytics (RecipientResult)", logs, "~1 KiB/outcome"));
        Console.WriteLine(Line("total", total, string.Empty));
        Console.WriteLine(Line("Azure Communication Services Email", acs, "$0.00025/email + $0.00012/MB"));
        Console.WriteLine(Line("Amazon SES", ses, "$0.10 per 1,000"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"COST table={table:F3} queue={queue:F3} blob={blob:F3} compute={compute:F3} executions={executions:F3} nat={nat:F3} egress={egress:F3} logs={logs:F3} total={total:F2} acs={acs:F2} ses={ses:F2}"));
    }
}
