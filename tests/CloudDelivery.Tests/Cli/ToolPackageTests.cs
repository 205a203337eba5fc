using System.Diagnostics;
using System.IO.Compression;
using System.Net.Sockets;
using System.Reflection;
using System.Text.Json;
using System.Xml.Linq;
using CloudDelivery.Tests.Storage;

namespace CloudDelivery.Tests.Cli;

/// <summary>
/// The CLI as a user gets it: the package `dotnet pack` makes of src/CloudDelivery.Cli, installed with
/// `dotnet tool install` from a local folder (no feed but that one), then run as its own process.
/// </summary>
public sealed class ToolPackageFixture : IAsyncLifetime
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), $"clouddelivery-tool-{Guid.NewGuid():N}");

    public string PackageDirectory => Path.Combine(Directory, "packages");

    public string ToolDirectory => Path.Combine(Directory, "tools");

    /// <summary>The installed tool's launcher.</summary>
    public string Tool => Path.Combine(ToolDirectory, OperatingSystem.IsWindows() ? "clouddelivery.exe" : "clouddelivery");

    public string Package { get; private set; } = "";

    /// <summary>The directory of the .NET installation running the tests: the installed tool's apphost needs it (DOTNET_ROOT).</summary>
    public static string DotnetRoot => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "..", "..", ".."));

    public async Task InitializeAsync()
    {
        System.IO.Directory.CreateDirectory(PackageDirectory);
        var repository = FindRepositoryRoot();
        // Pack what the test build already compiled (same configuration): no second build beside the test run.
        var configuration = typeof(ToolPackageFixture).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var pack = await RunAsync("dotnet", repository, null, TimeSpan.FromMinutes(4),
            "pack", Path.Combine(repository, "src", "CloudDelivery.Cli", "CloudDelivery.Cli.csproj"), "--no-build", "-c", configuration, "-o", PackageDirectory);
        Assert.True(pack.ExitCode == 0, $"dotnet pack failed:\n{pack.Output}\n{pack.Error}");
        Package = System.IO.Directory.EnumerateFiles(PackageDirectory, "CloudDelivery.Cli.*.nupkg").Single();

        // Only the local folder as a source, so the install proves the package is complete on its own.
        var config = Path.Combine(Directory, "nuget.config");
        await File.WriteAllTextAsync(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{PackageDirectory}" />
              </packageSources>
            </configuration>
            """);
        var install = await RunAsync("dotnet", Directory, null, TimeSpan.FromMinutes(3),
            "tool", "install", "CloudDelivery.Cli", "--tool-path", ToolDirectory, "--configfile", config);
        Assert.True(install.ExitCode == 0, $"dotnet tool install failed:\n{install.Output}\n{install.Error}");
    }

    public Task DisposeAsync()
    {
        System.IO.Directory.Delete(Directory, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>Runs the installed tool in <paramref name="workingDirectory"/> with only the environment given (plus DOTNET_ROOT, HOME, PATH).</summary>
    public Task<ToolRun> RunToolAsync(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        RunAsync(Tool, workingDirectory, environment, TimeSpan.FromMinutes(2), arguments);

    private static async Task<ToolRun> RunAsync(string program, string workingDirectory, IReadOnlyDictionary<string, string>? environment, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        if (environment is not null)
        {
            // A clean slate: nothing of the test process's own storage or identity settings leaks in.
            foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("CloudDelivery", StringComparison.OrdinalIgnoreCase) || k.StartsWith("AZURE_", StringComparison.Ordinal)).ToList())
            {
                start.Environment.Remove(key);
            }
            start.Environment["DOTNET_ROOT"] = DotnetRoot;
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }
        }
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in {timeout}:\n{await output}\n{await error}");
        }
        return new ToolRun(process.ExitCode, await output, await error);
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "CloudDelivery.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("CloudDelivery.sln not found above " + AppContext.BaseDirectory);
    }
}

public sealed record ToolRun(int ExitCode, string Output, string Error);

public class ToolPackageTests(ToolPackageFixture tool, HttpsAzuriteFixture azurite) : IClassFixture<ToolPackageFixture>, IClassFixture<HttpsAzuriteFixture>
{
    [Fact]
    public void The_package_says_what_it_is_whose_it_is_and_under_which_licence()
    {
        using var package = ZipFile.OpenRead(tool.Package);
        var nuspecEntry = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        using var nuspecStream = nuspecEntry.Open();
        var metadata = XDocument.Load(nuspecStream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Value(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;

        Assert.Equal("CloudDelivery.Cli", Value("id"));
        Assert.False(string.IsNullOrWhiteSpace(Value("authors")));
        Assert.Contains("mail transfer agent", Value("description"), StringComparison.Ordinal);
        var license = metadata.Elements().Single(e => e.Name.LocalName == "license");
        Assert.Equal("expression", license.Attribute("type")?.Value);
        Assert.Equal("MIT", license.Value);
        Assert.Equal("README.md", Value("readme"));
        Assert.StartsWith("https://", metadata.Elements().Single(e => e.Name.LocalName == "repository").Attribute("url")?.Value, StringComparison.Ordinal);
        // The readme the nuspec names is in the package, and it is the tool's page, not the repository's.
        var readme = package.GetEntry("README.md") ?? throw new Xunit.Sdk.XunitException("README.md is not in the package");
        using var reader = new StreamReader(readme.Open());
        Assert.Contains("dotnet tool install --global CloudDelivery.Cli", reader.ReadToEnd(), StringComparison.Ordinal);
        // A .NET tool: its settings name the command.
        Assert.Contains(package.Entries, e => e.FullName.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_installed_tool_runs_and_lists_its_commands()
    {
        var run = await tool.RunToolAsync(tool.Directory, Environment(), "--help");

        Assert.True(run.ExitCode == 0, run.Error);
        foreach (var command in new[] { "probe", "serve", "status", "queue", "tlsrpt" })
        {
            Assert.Contains(command, run.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Serve_from_an_installed_tool_without_azurite_says_in_one_line_how_to_get_it()
    {
        // The development ports must be free for this to mean anything: serve would use an emulator there.
        Assert.False(Listens(10000), "something listens on 127.0.0.1:10000; stop it to run this test");
        var workingDirectory = Path.Combine(tool.Directory, "elsewhere");
        Directory.CreateDirectory(workingDirectory);

        // PATH without any azurite, the working directory outside a checkout, the default development storage.
        var run = await tool.RunToolAsync(workingDirectory, Environment(), "serve", "--urls", "http://127.0.0.1:0");

        Assert.Equal(CloudDelivery.Cli.CliApplication.ExitPermanentFailure, run.ExitCode);
        var line = Assert.Single(run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains("npm install -g azurite", line, StringComparison.Ordinal);
        Assert.Contains("--account", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_with_an_account_signs_in_through_default_azure_credential_and_reads_the_queue()
    {
        // The deployed account, as the app left it: one queued recipient.
        var account = new CloudDelivery.Azure.Storage.OutboundStorageOptions
        {
            AccountName = CloudDelivery.Loopback.Storage.AzuriteProcess.AccountName,
            BlobEndpoint = azurite.Azurite.BlobEndpoint,
            QueueEndpoint = azurite.Azurite.QueueEndpoint,
            TableEndpoint = azurite.Azurite.TableEndpoint,
        };
        var storage = new CloudDelivery.Azure.Storage.OutboundStorage(account, counter: null, new UnsignedTokenCredential(), azurite.TrustingTransport());
        await storage.EnsureCreatedAsync(CancellationToken.None);
        await storage.Recipients.UpsertEntityAsync(new global::Azure.Data.Tables.TableEntity("account.example", "m1.0") { ["State"] = "queued" });

        // An `az` on PATH that hands out a token the OAuth-checking emulator accepts and notes each call: the
        // tool's DefaultAzureCredential asks the Azure CLI as it does on an operator's machine after `az login`.
        var bin = Path.Combine(tool.Directory, "fake-az");
        Directory.CreateDirectory(bin);
        var calls = Path.Combine(bin, "calls");
        var token = new UnsignedTokenCredential().GetToken(new global::Azure.Core.TokenRequestContext(["https://storage.azure.com/.default"]), CancellationToken.None);
        var response = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["accessToken"] = token.Token,
            ["expiresOn"] = token.ExpiresOn.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture),
            ["expires_on"] = token.ExpiresOn.ToUnixTimeSeconds(),
            ["tokenType"] = "Bearer",
        });
        var az = Path.Combine(bin, "az");
        await File.WriteAllTextAsync(az, $"#!/bin/sh\necho \"$*\" >> '{calls}'\ncat <<'JSON'\n{response}\nJSON\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(az, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var certificate = Path.Combine(bin, "root.pem");
        await File.WriteAllTextAsync(certificate, azurite.RootCertificatePem);
        var environment = Environment(bin);
        // Only the developer credentials' Azure CLI: no managed-identity probe of 169.254.169.254 from a test.
        environment["AZURE_TOKEN_CREDENTIALS"] = "AzureCliCredential";
        // The emulator's certificate is from the test CA (and names 127.0.0.1: with "localhost" and a port
        // other than 10002 the Tables SDK takes the endpoint for the Cosmos DB emulator and asks a Cosmos token).
        environment["SSL_CERT_FILE"] = certificate;

        var run = await tool.RunToolAsync(tool.Directory, environment,
            "status", "--account", CloudDelivery.Loopback.Storage.AzuriteProcess.AccountName,
            "--set", $"CloudDelivery:Storage:BlobEndpoint={azurite.Azurite.BlobEndpoint}",
            "--set", $"CloudDelivery:Storage:QueueEndpoint={azurite.Azurite.QueueEndpoint}",
            "--set", $"CloudDelivery:Storage:TableEndpoint={azurite.Azurite.TableEndpoint}",
            "--json");

        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}\n{run.Output}\n{run.Error}");
        var asked = await File.ReadAllTextAsync(calls);
        Assert.Contains("get-access-token", asked, StringComparison.Ordinal);
        Assert.True(asked.Contains("--resource https://storage.azure.com", StringComparison.Ordinal), "the Azure CLI was asked: " + asked);
        using var status = JsonDocument.Parse(run.Output);
        Assert.Equal(1, status.RootElement.GetProperty("queued").GetInt32());
    }

    /// <summary>The environment of a user's shell: the .NET host, and a PATH with nothing but the basics (and <paramref name="extraPath"/> first).</summary>
    private static Dictionary<string, string> Environment(string? extraPath = null) => new()
    {
        ["PATH"] = string.Join(Path.PathSeparator, new[] { extraPath, ToolPackageFixture.DotnetRoot, "/usr/bin", "/bin" }.Where(p => p is not null)),
        ["HOME"] = Path.GetTempPath(),
    };

    private static bool Listens(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
