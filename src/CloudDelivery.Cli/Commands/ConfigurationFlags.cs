using CloudDelivery.Azure.Hosting;
using CloudDelivery.Azure.Telemetry;
using Microsoft.Extensions.Configuration;

namespace CloudDelivery.Cli.Commands;

/// <summary>A command-line flag that writes a configuration key (README, "Configuration").</summary>
internal sealed record FlagKey(string Flag, string Key);

/// <summary>
/// The command line as one more configuration layer: flags write the keys the hosts read, so every command
/// binds the same options types through the same registrations as <c>serve</c> and the Functions app.
/// </summary>
internal static class ConfigurationFlags
{
    public const string Hostname = CloudDeliveryOptions.SectionName + ":" + nameof(CloudDeliveryOptions.Hostname);
    public const string Resolver = CloudDeliveryOptions.DeliverySection + ":Resolver";
    public const string TrustCaFile = CloudDeliveryOptions.DeliverySection + ":TrustCaFile";
    public const string AllowPrivateAddresses = CloudDeliveryOptions.DeliverySection + ":AllowPrivateAddresses";
    public const string SmtpPort = CloudDeliveryOptions.DeliverySection + ":SmtpPort";
    public const string MtaStsHttpsPort = CloudDeliveryOptions.DeliverySection + ":MtaStsHttpsPort";
    public const string ConnectTimeoutSeconds = CloudDeliveryOptions.DeliverySection + ":ConnectTimeoutSeconds";
    public const string CommandTimeoutSeconds = CloudDeliveryOptions.DeliverySection + ":CommandTimeoutSeconds";
    public const string StorageConnectionString = CloudDeliveryOptions.SectionName + ":Storage:ConnectionString";
    public const string StorageAccountName = CloudDeliveryOptions.SectionName + ":Storage:AccountName";
    public const string ManagedIdentityClientId = CloudDeliveryOptions.SectionName + ":" + nameof(CloudDeliveryOptions.ManagedIdentityClientId);
    public const string TelemetryExporter = TelemetryOptions.SectionName + ":Exporter";
    public const string TlsPolicies = CloudDelivery.Tls.OperatorTlsPolicyOptions.SectionPath + ":" + nameof(CloudDelivery.Tls.OperatorTlsPolicyOptions.Policies);

    /// <summary>Every flag that writes a key, and the key; a test checks each against the README and the binding.</summary>
    public static IReadOnlyList<FlagKey> All { get; } =
    [
        new("--ehlo", Hostname),
        new("--resolver", Resolver),
        new("--trust-ca", TrustCaFile),
        new("--allow-private-addresses", AllowPrivateAddresses),
        new("--smtp-port", SmtpPort),
        new("--mta-sts-port", MtaStsHttpsPort),
        new("--timeout", ConnectTimeoutSeconds),
        new("--timeout", CommandTimeoutSeconds),
        new("--storage", StorageConnectionString),
        new("--storage", StorageAccountName),
        new("--account", StorageAccountName),
        new("--account", ManagedIdentityClientId),
        new("--telemetry", TelemetryExporter),
        new("--tls-policy", TlsPolicies),
    ];

    /// <summary>
    /// The command's configuration: its own defaults (where they differ from the hosts'), then the
    /// environment, then what its flags and --set wrote, which win.
    /// </summary>
    public static IConfigurationRoot Build(IEnumerable<KeyValuePair<string, string?>> defaults, IEnumerable<KeyValuePair<string, string?>> overrides) =>
        new ConfigurationBuilder().AddInMemoryCollection(defaults).AddEnvironmentVariables().AddInMemoryCollection(overrides).Build();

    /// <summary>
    /// A validation failure ("KEY VALUE: problem") in the words of the command line when a flag of
    /// <paramref name="written"/> set that key ("--flag VALUE: problem"); a key from the environment stays named as it is.
    /// </summary>
    public static string InFlagTerms(Microsoft.Extensions.Options.OptionsValidationException e, IReadOnlySet<string> written) =>
        string.Join("; ", e.Failures.Select(failure =>
            All.FirstOrDefault(f => written.Contains(f.Key) && failure.StartsWith(f.Key + " ", StringComparison.OrdinalIgnoreCase)) is { } flag
                ? flag.Flag + failure[flag.Key.Length..]
                : failure));
}
