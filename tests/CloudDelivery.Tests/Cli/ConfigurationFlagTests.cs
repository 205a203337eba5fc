using System.CommandLine;
using System.Reflection;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Tests.Docs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CloudDelivery.Tests.Cli;

/// <summary>
/// The command line is a configuration layer: each flag writes a key the hosts read, and the options the
/// hosts' registrations bind from that key take the flag's value.
/// </summary>
public class ConfigurationFlagTests
{
    /// <summary>One case per entry of <see cref="ConfigurationFlags.All"/>: the flag given, its key, the value bound.</summary>
    public static TheoryData<string[], string, string> Flags => new()
    {
        { ["--ehlo", "mta.flags.example"], ConfigurationFlags.Hostname, "mta.flags.example" },
        { ["--resolver", "127.0.0.9:5353"], ConfigurationFlags.Resolver, "127.0.0.9:5353" },
        { ["--trust-ca", "/roots/one.pem"], ConfigurationFlags.TrustCaFile, "/roots/one.pem" },
        { ["--allow-private-addresses"], ConfigurationFlags.AllowPrivateAddresses, "true" },
        { ["--smtp-port", "2525"], ConfigurationFlags.SmtpPort, "2525" },
        { ["--mta-sts-port", "8443"], ConfigurationFlags.MtaStsHttpsPort, "8443" },
        { ["--timeout", "7"], ConfigurationFlags.ConnectTimeoutSeconds, "7" },
        { ["--timeout", "7"], ConfigurationFlags.CommandTimeoutSeconds, "7" },
        { ["--storage", "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1"], ConfigurationFlags.StorageConnectionString, "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1" },
        { ["--storage", "UseDevelopmentStorage=true"], ConfigurationFlags.StorageAccountName, string.Empty },
        { ["--account", "stdeployed"], ConfigurationFlags.StorageAccountName, "stdeployed" },
        { ["--account", "stdeployed"], ConfigurationFlags.ManagedIdentityClientId, string.Empty },
        { ["--telemetry", "console"], ConfigurationFlags.TelemetryExporter, "console" },
        { ["--tls-policy", "example.com verify"], ConfigurationFlags.TlsPolicies, "example.com verify" },
    };

    [Theory]
    [MemberData(nameof(Flags))]
    public void A_flag_writes_its_key_and_the_bound_option_takes_the_value(string[] args, string key, string expected)
    {
        var configuration = CommandLineConfiguration(args);

        Assert.Equal(expected, configuration[key]);
        Assert.Equal(expected, BoundValue(configuration, key), ignoreCase: true);
    }

    [Fact]
    public void Every_flag_that_writes_a_key_has_a_binding_case()
    {
        var covered = Flags.Select(row => ((string[])row[0])[0] + " " + (string)row[1]).ToHashSet(StringComparer.Ordinal);

        var missing = ConfigurationFlags.All.Where(f => !covered.Contains(f.Flag + " " + f.Key)).ToList();

        Assert.True(missing.Count == 0, "flags without a binding case: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_flag_key_is_a_setting_of_an_options_type()
    {
        var settings = ConfigurationReferenceTests.AllSettingNames().ToHashSet(StringComparer.Ordinal);

        var unknown = ConfigurationFlags.All.Where(f => !settings.Contains(f.Key.Replace(":", "__", StringComparison.Ordinal))).ToList();

        Assert.True(unknown.Count == 0, "flags writing keys no options type binds: " + string.Join(", ", unknown));
    }

    [Fact]
    public async Task The_engine_of_deliver_and_probe_takes_the_flags_through_the_hosts_registration()
    {
        var common = new CommonOptions();
        var parse = Parse(common, "--ehlo", "mta.flags.example", "--smtp-port", "2525", "--timeout", "7", "--allow-private-addresses");

        await using var services = common.BuildServices(parse);
        var engine = common.Engine(services, parse);

        Assert.Equal("mta.flags.example", engine.Options.EhloHostname);
        Assert.Equal(2525, engine.Options.SmtpPort);
        Assert.Equal(TimeSpan.FromSeconds(7), engine.Options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(7), engine.Options.CommandTimeout);
        Assert.Equal(CloudDelivery.Dialing.AddressPolicy.AllowPrivate, engine.Options.AddressPolicy);
    }

    [Fact]
    public async Task Repeated_tls_policy_flags_become_the_engines_operator_policies()
    {
        var common = new CommonOptions();
        var parse = Parse(common, "--tls-policy", "example.com encrypt", "--tls-policy", "sender:bank.example verify");

        await using var services = common.BuildServices(parse);
        var engine = common.Engine(services, parse);

        Assert.Equal(["example.com encrypt", "sender:bank.example verify"], engine.Options.TlsPolicies.Entries.Select(e => e.ToString()));
    }

    [Fact]
    public async Task Without_timeout_the_command_line_keeps_its_own_default_of_sixty_seconds()
    {
        var common = new CommonOptions();
        var parse = Parse(common);

        await using var services = common.BuildServices(parse);
        var engine = common.Engine(services, parse);

        Assert.Equal(TimeSpan.FromSeconds(60), engine.Options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), engine.Options.CommandTimeout);
        Assert.Equal(TimeSpan.FromMinutes(30), engine.Options.SessionTimeout);
    }

    [Fact]
    public async Task Repeated_trust_ca_files_all_become_roots()
    {
        var first = WriteRootPem("CN=first root");
        var second = WriteRootPem("CN=second root");
        try
        {
            var common = new CommonOptions();
            var parse = Parse(common, "--trust-ca", first, "--trust-ca", second);

            await using var services = common.BuildServices(parse);
            var engine = common.Engine(services, parse);

            Assert.Equal(["CN=first root", "CN=second root"], engine.Options.ExtraTrustRoots!.Select(c => c.Subject));
        }
        finally
        {
            File.Delete(first);
            File.Delete(second);
        }
    }

    [Theory]
    [InlineData("--resolver", "resolver.example:53", "--resolver resolver.example:53: expected an IP address and port, e.g. 127.0.0.1:53")]
    [InlineData("--smtp-port", "70000", "--smtp-port 70000: expected a port from 1 to 65535")]
    [InlineData("--trust-ca", "/nonexistent/roots.pem", "--trust-ca /nonexistent/roots.pem: ")]
    [InlineData("--tls-policy", "example.com verfy", "--tls-policy entry 1: unknown level \"verfy\"")]
    public async Task A_bad_flag_is_a_usage_error_in_the_flags_words(string flag, string value, string expected)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CloudDelivery.Cli.CliApplication.RunAsync(["probe", "example.com", flag, value], output, error);

        Assert.Equal(CloudDelivery.Cli.CliApplication.ExitUsage, exit);
        Assert.StartsWith("clouddelivery probe: " + expected, (output.ToString() + error.ToString()).Trim(), StringComparison.Ordinal);
    }

    /// <summary>The configuration one command with every configuration flag would build (environment left out).</summary>
    private static IConfigurationRoot CommandLineConfiguration(string[] args)
    {
        var common = new CommonOptions();
        var service = new ServiceOptions();
        var telemetry = ServeCommand.TelemetryOption();
        var command = new Command("test") { telemetry };
        common.AddTo(command);
        service.AddTo(command);
        var parse = command.Parse(args);
        Assert.Empty(parse.Errors);
        var overrides = service.Overrides(parse, common);
        ServeCommand.WriteTelemetry(parse, telemetry, overrides);
        return new ConfigurationBuilder().AddInMemoryCollection(CommonOptions.Defaults()).AddInMemoryCollection(overrides).Build();
    }

    /// <summary>The value the options type bound from <paramref name="key"/>'s section holds at that key, as text.</summary>
    private static string? BoundValue(IConfiguration configuration, string key)
    {
        var (type, section) = ConfigurationReferenceTests.BoundSections
            .Where(b => key.StartsWith(b.Section + ":", StringComparison.Ordinal))
            .MaxBy(b => b.Section.Length);
        object? value = configuration.GetSection(section).Get(type) ?? Activator.CreateInstance(type);
        foreach (var name in key[(section.Length + 1)..].Split(':'))
        {
            value = value?.GetType().GetProperty(name, BindingFlags.Public | BindingFlags.Instance)!.GetValue(value);
        }
        return value switch
        {
            null => null,
            bool b => b ? "true" : "false",
            IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
            _ => value.ToString(),
        };
    }

    private static ParseResult Parse(CommonOptions common, params string[] args)
    {
        var command = new Command("test");
        common.AddTo(command);
        var parse = command.Parse(args);
        Assert.Empty(parse.Errors);
        return parse;
    }

    private static string WriteRootPem(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var file = Path.GetTempFileName();
        File.WriteAllText(file, certificate.ExportCertificatePem());
        return file;
    }
}
