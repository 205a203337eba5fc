using CloudDelivery.Azure.Submission;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Functions;

namespace CloudDelivery.Tests.Queue;

/// <summary>The Functions entry points, called directly with real handlers on Azurite and loopback peers.</summary>
[Collection(AzuriteCollection.Name)]
public class FunctionsTests(AzuriteFixture azurite)
{
    private static DeliveryFunctions Functions(QueueWorld world) =>
        new(world.Handler, new WakeUpWorker(world.Queue, world.Handler, new WakeUpWorkerOptions()), new SubmissionEndpoint(world.Queue));

    [Fact]
    public async Task Queue_trigger_delivers_the_domain_of_its_wake_up()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        world.Network.Zone.AddMx("fn.example", 10, "mx.fn.example");
        var mx = await world.Network.AddMxServerAsync("mx.fn.example");
        await world.SubmitAsync("s@sender.example", ["r@fn.example"]);

        await Functions(world).DeliverDomain(new WakeUp("fn.example").ToJson(), CancellationToken.None);

        Assert.Single(mx.Messages);
    }

    [Fact]
    public async Task Queue_trigger_throws_on_a_malformed_message_so_the_runtime_poisons_it()
    {
        await using var world = await QueueWorld.StartAsync(azurite);

        await Assert.ThrowsAsync<FormatException>(() => Functions(world).DeliverDomain("garbage", CancellationToken.None));
    }

    [Fact]
    public async Task Http_trigger_accepts_a_raw_message_with_the_envelope_in_the_query()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        var request = FunctionHttpCall.Request("POST", "/api/messages?from=s@sender.example&to=a@fn.example,b@fn.example", "message/rfc822", "Subject: via function\r\n\r\nhi\r\n");

        var response = await FunctionHttpCall.InvokeAsync(request, r => Functions(world).SubmitMessage(r, CancellationToken.None));

        Assert.Equal(System.Net.HttpStatusCode.Accepted, (System.Net.HttpStatusCode)response.StatusCode);
        using var json = System.Text.Json.JsonDocument.Parse(response.Body());
        Assert.Equal(2, json.RootElement.GetProperty("recipients").GetArrayLength());
    }

    [Fact]
    public async Task Timer_trigger_sweeps_stranded_domains()
    {
        await using var world = await QueueWorld.StartAsync(azurite);
        await world.SubmitAsync("s@sender.example", ["r@stranded.example"]);
        await world.Storage.WakeUps.ClearMessagesAsync();
        world.Time.Advance(TimeSpan.FromMinutes(5));

        await Functions(world).SweepStranded(new Microsoft.Azure.Functions.Worker.TimerInfo(), CancellationToken.None);

        var woken = (await world.Storage.WakeUps.ReceiveMessagesAsync(10)).Value;
        Assert.Equal("stranded.example", WakeUp.Parse(Assert.Single(woken).Body.ToString()).Domain);
    }
}
