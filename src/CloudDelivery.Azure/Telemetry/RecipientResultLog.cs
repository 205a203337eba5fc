using Microsoft.Extensions.Logging;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// The "RecipientResult" log event: one per recipient outcome, with the properties the workbook queries
/// (customDimensions in Application Insights). Deliberately without the recipient's address or any
/// content, so the event can be kept and shared at information level.
/// </summary>
public static partial class RecipientResultLog
{
    public const int EventIdValue = 5001;

    [LoggerMessage(
        EventId = EventIdValue,
        EventName = "RecipientResult",
        Level = LogLevel.Information,
        Message = "Recipient of message {MessageId} at {RecipientDomain}: {Result} via {MxHost} on attempt {Attempt} (reason {Reason}, category {Category}, TLS {TlsPosture})")]
    public static partial void RecipientResult(ILogger logger, string messageId, string recipientDomain, string mxHost, int attempt, string result, string reason, string tlsPosture, string category);
}
