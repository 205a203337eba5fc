using System.CommandLine;
using System.Globalization;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Delivery;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// Options every engine command takes. They write configuration keys (<see cref="ConfigurationFlags"/>)
/// over the environment's; the engine is then built by the hosts' own registration.
/// </summary>
internal sealed class CommonOptions
{
    /// <summary>The command line's timeout when --timeout is not given (the hosts' defaults are longer).</summary>
    private const int DefaultTimeoutSeconds = 60;

    public Option<string?> Resolver { get; } = new("--resolver") { Description = "DNS resolver as HOST:PORT (default: the system's). Use a validating resolver for DANE." };

    public Option<FileInfo[]> TrustCa { get; } = new("--trust-ca") { Description = "PEM file with extra root certificates for WebPKI, added to the system store.", AllowMultipleArgumentsPerToken = false };

    public Option<string> Ehlo { get; } = new("--ehlo") { Description = "Host name to send in EHLO.", DefaultValueFactory = _ => System.Net.Dns.GetHostName() };

    public Option<bool> AllowPrivateAddresses { get; } = new("--allow-private-addresses") { Description = "Allow dialling private, loopback and link-local addresses." };

    public Option<int> SmtpPort { get; } = new("--smtp-port") { Description = "SMTP port of MX hosts (tests only).", DefaultValueFactory = _ => 25 };

    public Option<int> MtaStsPort { get; } = new("--mta-sts-port") { Description = "HTTPS port of MTA-STS policy hosts (tests only).", DefaultValueFactory = _ => 443, Hidden = true };

    public Option<string[]> TlsPolicy { get; } = new("--tls-policy") { Description = "An operator TLS policy entry to try, e.g. \"example.com verify\" (repeatable; README, Operator TLS policy)." };

    public Option<int> TimeoutSeconds { get; } = new("--timeout") { Description = "Seconds allowed for each TCP connect and for each complete SMTP reply (a deadline for the whole reply, not an idle timeout).", DefaultValueFactory = _ => DefaultTimeoutSeconds };

    public void AddTo(Command command)
    {
        command.Options.Add(Resolver);
        command.Options.Add(TrustCa);
        command.Options.Add(Ehlo);
        command.Options.Add(AllowPrivateAddresses);
        command.Options.Add(SmtpPort);
        command.Options.Add(MtaStsPort);
        command.Options.Add(TimeoutSeconds);
        command.Options.Add(TlsPolicy);
    }

    /// <summary>The command line's own defaults where they differ from the hosts': one timeout for connect and each reply.</summary>
    public static Dictionary<string, string?> Defaults() => new(StringComparer.OrdinalIgnoreCase)
    {
        [ConfigurationFlags.ConnectTimeoutSeconds] = Invariant(DefaultTimeoutSeconds),
        [ConfigurationFlags.CommandTimeoutSeconds] = Invariant(DefaultTimeoutSeconds),
    };

    /// <summary>The keys the flags given on the command line write (a flag left out leaves the key to the environment).</summary>
    public Dictionary<string, string?> Overrides(ParseResult parse)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (Given(parse, Ehlo))
        {
            overrides[ConfigurationFlags.Hostname] = parse.GetValue(Ehlo);
        }
        if (Given(parse, Resolver))
        {
            overrides[ConfigurationFlags.Resolver] = parse.GetValue(Resolver);
        }
        if (parse.GetValue(TrustCa) is { Length: > 0 } files)
        {
            // Several files in one value, as PATH lists directories (DeliveryOptions.TrustCaFile).
            overrides[ConfigurationFlags.TrustCaFile] = string.Join(Path.PathSeparator, files.Select(f => f.ToString()));
        }
        if (Given(parse, AllowPrivateAddresses))
        {
            overrides[ConfigurationFlags.AllowPrivateAddresses] = parse.GetValue(AllowPrivateAddresses) ? "true" : "false";
        }
        if (Given(parse, SmtpPort))
        {
            overrides[ConfigurationFlags.SmtpPort] = Invariant(parse.GetValue(SmtpPort));
        }
        if (Given(parse, MtaStsPort))
        {
            overrides[ConfigurationFlags.MtaStsHttpsPort] = Invariant(parse.GetValue(MtaStsPort));
        }
        if (Given(parse, TimeoutSeconds))
        {
            // As before the flag became keys: below one second means one second.
            var seconds = Invariant(Math.Max(1, parse.GetValue(TimeoutSeconds)));
            overrides[ConfigurationFlags.ConnectTimeoutSeconds] = seconds;
            overrides[ConfigurationFlags.CommandTimeoutSeconds] = seconds;
        }
        if (parse.GetValue(TlsPolicy) is { Length: > 0 } entries)
        {
            overrides[ConfigurationFlags.TlsPolicies] = string.Join(';', entries);
        }
        return overrides;
    }

    /// <summary>The engine alone (deliver, probe), from the environment under this command's flags, registered as the hosts register it.</summary>
    public ServiceProvider BuildServices(ParseResult parse)
    {
        var configuration = ConfigurationFlags.Build(Defaults(), Overrides(parse));
        var services = new ServiceCollection();
        services.AddOptions<CloudDeliveryOptions>().Configure(options => options.Hostname = configuration[ConfigurationFlags.Hostname] ?? options.Hostname);
        // The operator's rule sets, as the hosts load them: deliver and probe behave as the service would.
        services.AddBounceClassification(configuration.GetSection(BounceOptions.SectionPath));
        services.AddOperatorTlsPolicies(configuration.GetSection(Tls.OperatorTlsPolicyOptions.SectionPath));
        services.AddTrafficShaping(configuration.GetSection(global::CloudDelivery.Shaping.TrafficShapingOptions.SectionPath));
        services.AddDeliveryEngine(configuration.GetSection(CloudDeliveryOptions.DeliverySection));
        return services.BuildServiceProvider();
    }

    /// <summary>The engine of <paramref name="services"/>; settings that fail its start-up check are a usage error in the flags' words.</summary>
    /// <exception cref="UsageException">A setting is invalid.</exception>
    public DeliveryEngine Engine(IServiceProvider services, ParseResult parse)
    {
        try
        {
            return services.GetRequiredService<DeliveryEngine>();
        }
        catch (OptionsValidationException e) when (e.OptionsType == typeof(DeliveryOptions) || e.OptionsType == typeof(Tls.OperatorTlsPolicyOptions))
        {
            throw new UsageException(ConfigurationFlags.InFlagTerms(e, Overrides(parse).Keys.ToHashSet(StringComparer.OrdinalIgnoreCase)));
        }
    }

    private static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Bad command-line input: reported as one line, exit code 64.</summary>
internal sealed class UsageException(string message) : Exception(message);
