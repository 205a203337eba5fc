using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>A log entry with its structured properties, as a logging sink receives it.</summary>
public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, string> Properties, Exception? Exception);

/// <summary>
/// A logging sink that keeps every entry with the structured state it was logged with (what an exporter
/// would turn into customDimensions). Added to a real LoggerFactory or host; it stands in for nothing.
/// </summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> entries = new();

    public IReadOnlyList<CapturedLog> Entries => entries.ToArray();

    public ILogger CreateLogger(string categoryName) => new Sink(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Sink(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var properties = new Dictionary<string, string>(StringComparer.Ordinal);
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (key, value) in pairs)
                {
                    properties[key] = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
                }
            }
            owner.entries.Enqueue(new CapturedLog(category, logLevel, eventId, formatter(state, exception), properties, exception));
        }
    }
}
