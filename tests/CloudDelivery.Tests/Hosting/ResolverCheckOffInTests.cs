using System.Runtime.CompilerServices;

namespace CloudDelivery.Tests.Hosting;

/// <summary>
/// Every host a test starts (<c>serve</c>, the CLI) reads the environment, and with Delivery:Resolver unset
/// its resolver self-check would ask the system's resolver for public names: outside 127.0.0.0/8. The test
/// process switches the check off for all of them; tests of the check turn it on with their own settings
/// (which come after the environment) and point it at a loopback resolver.
/// </summary>
internal static class ResolverCheckOffInTests
{
    public const string Variable = "CloudDelivery__Delivery__ResolverCheck__Enabled";

    [ModuleInitializer]
    internal static void SwitchOff()
    {
        if (Environment.GetEnvironmentVariable(Variable) is null)
        {
            Environment.SetEnvironmentVariable(Variable, "false");
        }
    }
}
