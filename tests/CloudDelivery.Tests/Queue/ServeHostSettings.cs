using System.Globalization;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Tests.Delivery;

namespace CloudDelivery.Tests.Queue;

/// <summary>The configuration of a <c>serve</c> host that delivers into a loopback world from a test's own storage names.</summary>
internal static class ServeHostSettings
{
    public static Dictionary<string, string?> For(LoopbackWorld world, string connectionString, OutboundStorage storage, string trustCaFile) => new()
    {
        ["CloudDelivery:Hostname"] = "mta.loopback.test",
        ["CloudDelivery:Storage:ConnectionString"] = connectionString,
        ["CloudDelivery:Storage:BodiesContainer"] = storage.Options.BodiesContainer,
        ["CloudDelivery:Storage:RecipientsTable"] = storage.Options.RecipientsTable,
        ["CloudDelivery:Storage:WakeUpQueue"] = storage.Options.WakeUpQueue,
        ["CloudDelivery:Storage:PoisonQueue"] = storage.Options.PoisonQueue,
        ["CloudDelivery:Storage:IdempotencyTable"] = storage.Options.IdempotencyTable,
        ["CloudDelivery:Storage:ShapingTable"] = storage.Options.ShapingTable,
        ["CloudDelivery:Delivery:Resolver"] = world.Dns.EndPoint.ToString(),
        ["CloudDelivery:Delivery:SmtpPort"] = world.SmtpPort.ToString(CultureInfo.InvariantCulture),
        ["CloudDelivery:Delivery:MtaStsHttpsPort"] = world.MtaSts.EndPoint.Port.ToString(CultureInfo.InvariantCulture),
        ["CloudDelivery:Delivery:AllowPrivateAddresses"] = "true",
        ["CloudDelivery:Delivery:TrustCaFile"] = trustCaFile,
    };
}
