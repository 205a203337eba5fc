using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace CloudDelivery.Tests.Telemetry;

/// <summary>One measurement as a listener saw it.</summary>
public sealed record CapturedMeasurement(string Instrument, double Value, IReadOnlyDictionary<string, string> Tags)
{
    public string Tag(string name) => Tags.TryGetValue(name, out var value) ? value : string.Empty;
}

/// <summary>
/// Collects the measurements of one meter instance (not every meter of that name: other tests run in
/// parallel with their own instances) through a real <see cref="MeterListener"/>.
/// </summary>
public sealed class MeasurementCapture : IDisposable
{
    private readonly MeterListener listener = new();
    private readonly ConcurrentQueue<CapturedMeasurement> measurements = new();

    public MeasurementCapture(Meter meter)
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == meter)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        listener.Start();
    }

    public IReadOnlyList<CapturedMeasurement> All => measurements.ToArray();

    public IReadOnlyList<CapturedMeasurement> Of(string instrument) => All.Where(m => m.Instrument == instrument).ToList();

    /// <summary>Reads the observable instruments now and returns what they reported.</summary>
    public IReadOnlyList<CapturedMeasurement> Observe(string instrument)
    {
        measurements.Clear();
        listener.RecordObservableInstruments();
        return Of(instrument);
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            map[tag.Key] = tag.Value?.ToString() ?? string.Empty;
        }
        measurements.Enqueue(new CapturedMeasurement(instrument.Name, value, map));
    }

    public void Dispose() => listener.Dispose();
}
