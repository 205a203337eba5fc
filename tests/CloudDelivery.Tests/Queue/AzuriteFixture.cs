using CloudDelivery.Azure.Storage;
using CloudDelivery.Loopback.Storage;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// Azurite for the test run: started once on free loopback ports, in memory. Each test takes its own
/// container, table and queue names, so tests stay independent.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private static int nextName;
    private AzuriteProcess? azurite;

    public string ConnectionString => azurite!.ConnectionString;

    public async Task InitializeAsync() => azurite = await AzuriteProcess.StartAsync();

    /// <summary>Storage with names no other test uses, created.</summary>
    /// <param name="transport">The storage clients' HTTP transport (tests that disturb requests); the SDK's default when null.</param>
    public async Task<OutboundStorage> NewStorageAsync(global::Azure.Core.Pipeline.HttpPipelineTransport? transport = null)
    {
        var n = Interlocked.Increment(ref nextName);
        var suffix = $"{Environment.ProcessId % 10000}x{n}";
        var storage = new OutboundStorage(
            new OutboundStorageOptions
            {
                ConnectionString = ConnectionString,
                BodiesContainer = $"bodies{suffix}",
                RecipientsTable = $"recipients{suffix}".Replace("x", "X", StringComparison.Ordinal),
                TlsReportsTable = $"tlsrpt{suffix}".Replace("x", "X", StringComparison.Ordinal),
                WakeUpQueue = $"wakeups{suffix}",
                PoisonQueue = $"poison{suffix}",
                MtaStsTable = $"mtasts{suffix}".Replace("x", "X", StringComparison.Ordinal),
                IdempotencyTable = $"idempotency{suffix}".Replace("x", "X", StringComparison.Ordinal),
                SuppressionsTable = $"suppressions{suffix}".Replace("x", "X", StringComparison.Ordinal),
                ShapingTable = $"shaping{suffix}".Replace("x", "X", StringComparison.Ordinal),
            },
            counter: null,
            credential: null,
            transport);
        await storage.EnsureCreatedAsync(CancellationToken.None);
        return storage;
    }

    public Task DisposeAsync()
    {
        azurite?.Dispose();
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
