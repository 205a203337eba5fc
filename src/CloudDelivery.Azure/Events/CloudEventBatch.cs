namespace CloudDelivery.Azure.Events;

/// <summary>
/// The CloudEvents JSON batch format (CloudEvents 1.0 JSON Event Format §4, media type
/// application/cloudevents-batch+json): a JSON array of structured events. Both sinks send it; the events
/// are already encoded, so a batch is their bytes joined with commas inside brackets, never re-serialised.
/// </summary>
internal static class CloudEventBatch
{
    /// <summary>The media type of a batch, as Event Grid expects it on its CloudEvents endpoint.</summary>
    public const string MediaType = "application/cloudevents-batch+json";

    /// <summary>
    /// Splits <paramref name="events"/>, in order, into runs of at most <paramref name="maxCount"/> events whose
    /// encoded array is at most <paramref name="maxBytes"/> bytes. An event too large on its own is a run of one:
    /// the receiver's refusal then names it, and the dispatcher parks it rather than block the rest.
    /// </summary>
    public static IEnumerable<IReadOnlyList<OutboxEvent>> Split(IReadOnlyList<OutboxEvent> events, int maxCount, int maxBytes)
    {
        var run = new List<OutboxEvent>();
        var runBytes = 2; // "[" and "]"
        foreach (var outboxEvent in events)
        {
            var addedBytes = outboxEvent.Json.Length + (run.Count > 0 ? 1 : 0);
            if (run.Count > 0 && (run.Count >= maxCount || runBytes + addedBytes > maxBytes))
            {
                yield return run;
                run = [];
                runBytes = 2;
                addedBytes = outboxEvent.Json.Length;
            }
            run.Add(outboxEvent);
            runBytes += addedBytes;
        }
        if (run.Count > 0)
        {
            yield return run;
        }
    }

    /// <summary>The JSON array of <paramref name="events"/>' encoded objects.</summary>
    public static byte[] Encode(IReadOnlyList<OutboxEvent> events)
    {
        var length = 2 + events.Sum(e => e.Json.Length) + Math.Max(0, events.Count - 1);
        var array = new byte[length];
        array[0] = (byte)'[';
        var at = 1;
        for (var i = 0; i < events.Count; i++)
        {
            if (i > 0)
            {
                array[at++] = (byte)',';
            }
            events[i].Json.Span.CopyTo(array.AsSpan(at));
            at += events[i].Json.Length;
        }
        array[at] = (byte)']';
        return array;
    }
}
