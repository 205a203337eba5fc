using CloudDelivery.Azure.TlsRpt;
using Microsoft.Azure.Functions.Worker;

namespace CloudDelivery.Functions;

/// <summary>TLSRPT (RFC 8460): the daily reports about how TLS went when delivering to each domain.</summary>
public sealed class TlsRptFunctions(TlsRptReportSender sender)
{
    /// <summary>
    /// Just after 00:00 UTC sends the previous day's reports; the later runs of the day retry destinations
    /// that failed. Schedule: <see cref="TlsRptReportSender.Schedule"/>.
    /// </summary>
    [Function(nameof(SendTlsReports))]
    public Task SendTlsReports([TimerTrigger(TlsRptReportSender.Schedule)] TimerInfo timer, CancellationToken cancellationToken) =>
        sender.RunAsync(cancellationToken);
}
