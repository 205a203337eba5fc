using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Cli;

namespace CloudDelivery.Tests.Queue;

/// <summary>send, status and queue against Azurite, through the command line as an operator uses them.</summary>
[Collection(AzuriteCollection.Name)]
public class QueueCliTests(AzuriteFixture azurite)
{
    private static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        var exit = await CliApplication.RunAsync(args, output, output);
        return (exit, output.ToString());
    }

    [Fact]
    public async Task Send_then_status_then_queue_retry_and_drop()
    {
        // The commands use the default container, table and queue names (only this test does).
        var defaults = new Azure.Storage.OutboundStorage(new Azure.Storage.OutboundStorageOptions { ConnectionString = azurite.ConnectionString });
        await defaults.EnsureCreatedAsync(CancellationToken.None);
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, "Subject: cli\r\n\r\nbody\r\n");
        try
        {
            var sent = await RunAsync("send", "--from", "s@sender.example", "--to", "r1@cli-queue.example", "--to", "r2@cli-queue.example", "--message", file, "--storage", azurite.ConnectionString);
            Assert.Equal(0, sent.Exit);
            var lines = sent.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var messageId = lines[0].Split(' ')[1];
            var firstId = lines[1].Split(' ')[1];
            var secondId = lines[2].Split(' ')[1];

            var status = await RunAsync("status", messageId, "--storage", azurite.ConnectionString);
            Assert.Equal(0, status.Exit);
            Assert.Contains("r1@cli-queue.example", status.Output, StringComparison.Ordinal);
            Assert.Contains("queued", status.Output, StringComparison.Ordinal);

            var listed = await RunAsync("queue", "list", "--domain", "cli-queue.example", "--storage", azurite.ConnectionString);
            Assert.Contains(firstId, listed.Output, StringComparison.Ordinal);

            Assert.Equal(0, (await RunAsync("queue", "drop", secondId, "--storage", azurite.ConnectionString)).Exit);
            Assert.Equal(0, (await RunAsync("queue", "retry", firstId, "--storage", azurite.ConnectionString)).Exit);
            var after = await RunAsync("status", secondId, "--json", "--storage", azurite.ConnectionString);
            Assert.Contains("\"state\": \"dropped\"", after.Output, StringComparison.Ordinal);
            var retried = await RunAsync("status", firstId, "--storage", azurite.ConnectionString);
            Assert.Contains("retry: operator asked for an attempt now", retried.Output, StringComparison.Ordinal);

            var missing = await RunAsync("status", "nothing-here", "--storage", azurite.ConnectionString);
            Assert.Equal(1, missing.Exit);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Operator_commands_read_the_whole_configuration_like_the_hosts()
    {
        // Table, container and queue names set as the service's settings (not the defaults) are honoured.
        var storage = await azurite.NewStorageAsync();
        string[] service =
        [
            "--storage", azurite.ConnectionString,
            "--set", $"CloudDelivery:Storage:RecipientsTable={storage.Options.RecipientsTable}",
            "--set", $"CloudDelivery:Storage:BodiesContainer={storage.Options.BodiesContainer}",
            "--set", $"CloudDelivery:Storage:WakeUpQueue={storage.Options.WakeUpQueue}",
        ];
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, "Subject: settings\r\n\r\nbody\r\n");
        try
        {
            var sent = await RunAsync(["send", "--from", "s@sender.example", "--to", "r@cli-settings.example", "--message", file, .. service]);
            Assert.Equal(0, sent.Exit);
            var recipientId = sent.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[1].Split(' ')[1];
            var stored = Assert.Single(storage.Recipients.Query<RecipientRecord>(r => r.PartitionKey == "cli-settings.example"));
            Assert.Equal(recipientId, stored.Id);

            var listed = await RunAsync(["queue", "list", .. service]);
            Assert.Contains(recipientId, listed.Output, StringComparison.Ordinal);
            var counts = await RunAsync(["status", "--json", .. service]);
            Assert.Contains("\"queued\": 1", counts.Output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_malformed_setting_is_a_usage_error_with_a_clear_message()
    {
        var result = await RunAsync("status", "--set", "CloudDelivery:Storage:RecipientsTable");
        Assert.Equal(CliApplication.ExitUsage, result.Exit);
        Assert.Contains("--set CloudDelivery:Storage:RecipientsTable: expected KEY=VALUE", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Poison_queue_is_listed_requeued_and_cleared()
    {
        var storage = await azurite.NewStorageAsync();
        string[] service = ["--storage", azurite.ConnectionString, "--set", $"CloudDelivery:Storage:PoisonQueue={storage.Options.PoisonQueue}", "--set", $"CloudDelivery:Storage:WakeUpQueue={storage.Options.WakeUpQueue}"];
        await storage.Poison.SendMessageAsync(new WakeUp("stuck.example").ToJson());
        await storage.Poison.SendMessageAsync("not a wake-up");

        var listed = await RunAsync(["queue", "poison", .. service]);
        Assert.Equal(0, listed.Exit);
        Assert.Contains("2 message(s)", listed.Output, StringComparison.Ordinal);
        Assert.Contains("wake-up for stuck.example", listed.Output, StringComparison.Ordinal);
        Assert.Contains("malformed (wake-up is not JSON", listed.Output, StringComparison.Ordinal);

        var requeued = await RunAsync(["queue", "poison", "--requeue", .. service]);
        Assert.Contains("1 requeued, 0 deleted, 1 kept", requeued.Output, StringComparison.Ordinal);
        var woken = Assert.Single((await storage.WakeUps.ReceiveMessagesAsync(32)).Value);
        Assert.Equal("stuck.example", WakeUp.Parse(woken.Body.ToString()).Domain);

        var cleared = await RunAsync(["queue", "poison", "--clear", .. service]);
        Assert.Contains("0 requeued, 1 deleted, 0 kept", cleared.Output, StringComparison.Ordinal);
        Assert.Equal(0, (await storage.Poison.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }
}
