using Microsoft.Extensions.Logging;

namespace CloudDelivery.Azure.Telemetry;

/// <summary>
/// The "ResolverSelfCheck" log event: one per check of the configured resolver, with the properties an
/// alert or workbook queries (customDimensions in Application Insights). Information when the resolver
/// validates; Warning otherwise, since DANE is then off for every destination.
/// </summary>
public static partial class ResolverSelfCheckLog
{
    public const int EventIdValue = 5002;

    [LoggerMessage(
        EventId = EventIdValue,
        EventName = "ResolverSelfCheck",
        Message = "Resolver self-check of {Resolver}: {Result} ({Detail})")]
    public static partial void ResolverSelfCheck(ILogger logger, LogLevel level, string resolver, string result, string detail);
}
