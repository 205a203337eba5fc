using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Telemetry;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Telemetry;

public class DeliveryMetricsTests
{
    [Fact]
    public async Task A_plaintext_fallback_counts_destination_connections_and_the_fallback()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("metrics.example", 10, "mx.metrics.example");
        await world.AddMxServerAsync("mx.metrics.example", o => o.StartTlsReply = new SmtpServerReply(454, "4.7.0", "no TLS today"));
        using var metrics = new DeliveryMetrics();
        var counts = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == metrics.Meter)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => counts.AddOrUpdate(instrument.Name, value, (_, total) => total + value));
        listener.Start();
        using var engine = world.CreateEngine(metrics: metrics);

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("metrics.example", DeliveryEngineTests.Message("s@x", "r@metrics.example"), recipients: "r@metrics.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Equal(1, counts["clouddelivery.delivery.plaintext_fallbacks"]);
        Assert.Equal(2, counts["clouddelivery.delivery.destinations"]);
        Assert.Equal(2, counts["clouddelivery.delivery.connections"]);
        Assert.False(counts.ContainsKey("clouddelivery.delivery.destinations.authentic"));
    }
}
