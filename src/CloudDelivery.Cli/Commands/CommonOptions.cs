using System.CommandLine;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using CloudDelivery.Delivery;

namespace CloudDelivery.Cli.Commands;

/// <summary>Options every engine command takes, and their conversion into engine settings.</summary>
internal sealed class CommonOptions
{
    public Option<string?> Resolver { get; } = new("--resolver") { Description = "DNS resolver as HOST:PORT (default: the system's). Use a validating resolver for DANE." };

    public Option<FileInfo[]> TrustCa { get; } = new("--trust-ca") { Description = "PEM file with extra root certificates for WebPKI, added to the system store.", AllowMultipleArgumentsPerToken = false };

    public Option<string> Ehlo { get; } = new("--ehlo") { Description = "Host name to send in EHLO.", DefaultValueFactory = _ => System.Net.Dns.GetHostName() };

    public Option<bool> AllowPrivateAddresses { get; } = new("--allow-private-addresses") { Description = "Allow dialling private, loopback and link-local addresses." };

    public Option<int> SmtpPort { get; } = new("--smtp-port") { Description = "SMTP port of MX hosts (tests only).", DefaultValueFactory = _ => 25 };

    public Option<int> MtaStsPort { get; } = new("--mta-sts-port") { Description = "HTTPS port of MTA-STS policy hosts (tests only).", DefaultValueFactory = _ => 443, Hidden = true };

    public Option<int> TimeoutSeconds { get; } = new("--timeout") { Description = "Seconds allowed for each TCP connect and for each complete SMTP reply (a deadline for the whole reply, not an idle timeout).", DefaultValueFactory = _ => 60 };

    public void AddTo(Command command)
    {
        command.Options.Add(Resolver);
        command.Options.Add(TrustCa);
        command.Options.Add(Ehlo);
        command.Options.Add(AllowPrivateAddresses);
        command.Options.Add(SmtpPort);
        command.Options.Add(MtaStsPort);
        command.Options.Add(TimeoutSeconds);
    }

    /// <exception cref="UsageException">An option value is malformed or a file is unreadable.</exception>
    public DeliverySettings ToSettings(ParseResult parse)
    {
        IPEndPoint? resolver = null;
        if (parse.GetValue(Resolver) is { } text)
        {
            if (!IPEndPoint.TryParse(text, out resolver))
            {
                throw new UsageException($"--resolver {text}: expected an IP address and port, e.g. 127.0.0.1:53");
            }
            if (resolver.Port == 0)
            {
                resolver.Port = 53;
            }
        }
        X509Certificate2Collection? roots = null;
        foreach (var file in parse.GetValue(TrustCa) ?? [])
        {
            roots ??= [];
            try
            {
                roots.ImportFromPemFile(file.FullName);
            }
            catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
            {
                throw new UsageException($"--trust-ca {file}: {e.Message}");
            }
        }
        var timeout = TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(TimeoutSeconds)));
        return new DeliverySettings
        {
            Resolver = resolver,
            EhloHostname = parse.GetValue(Ehlo)!,
            SmtpPort = parse.GetValue(SmtpPort),
            MtaStsHttpsPort = parse.GetValue(MtaStsPort),
            AllowPrivateAddresses = parse.GetValue(AllowPrivateAddresses),
            ExtraTrustRoots = roots,
            ConnectTimeout = timeout,
            CommandTimeout = timeout,
        };
    }
}

/// <summary>Bad command-line input: reported as one line, exit code 64.</summary>
internal sealed class UsageException(string message) : Exception(message);
