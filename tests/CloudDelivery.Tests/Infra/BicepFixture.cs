using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;

namespace CloudDelivery.Tests.Infra;

/// <summary>
/// Compiles and lints every template under infra-bicep/ once per test class, with the Bicep compiler that
/// `dotnet restore` downloads (package Azure.Bicep.CommandLine.linux-x64, version BicepCliVersion in
/// Directory.Packages.props). Offline: the templates use no registry modules and restore is skipped.
/// </summary>
public sealed class BicepFixture : IAsyncLifetime
{
    private readonly string outputDirectory = Path.Combine(Path.GetTempPath(), $"clouddelivery-bicep-{Guid.NewGuid():N}");

    /// <summary>The repository's infra-bicep folder.</summary>
    public string TemplateDirectory { get; } = Path.Combine(FindRepositoryRoot(), "infra-bicep");

    public BicepRun Build { get; private set; } = null!;

    public BicepRun Lint { get; private set; } = null!;

    private JsonObject? mainTemplate;

    /// <summary>Compiled main.bicep.</summary>
    public JsonObject MainTemplate => mainTemplate ?? throw new InvalidOperationException($"main.bicep did not compile:\n{Build.StandardError}");

    public async Task InitializeAsync()
    {
        var bicep = FindBicep();
        Directory.CreateDirectory(outputDirectory);
        // Both walk every .bicep file (main and modules); run side by side to keep the class under ~10 s.
        var build = RunAsync(bicep, TemplateDirectory, "build", "--pattern", "**/*.bicep", "--no-restore", "--outdir", outputDirectory);
        var lint = RunAsync(bicep, TemplateDirectory, "lint", "--pattern", "**/*.bicep", "--no-restore");
        Build = await build;
        Lint = await lint;
        var main = Path.Combine(outputDirectory, "main.json");
        if (File.Exists(main))
        {
            mainTemplate = JsonNode.Parse(await File.ReadAllTextAsync(main))!.AsObject();
        }
    }

    /// <summary>The names of the compiled templates, relative to infra-bicep (e.g. modules/storage.json).</summary>
    public IReadOnlyList<string> CompiledTemplates() =>
        [.. Directory.EnumerateFiles(outputDirectory, "*.json", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(outputDirectory, path).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)];

    public Task DisposeAsync()
    {
        Directory.Delete(outputDirectory, recursive: true);
        return Task.CompletedTask;
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
        throw new InvalidOperationException($"CloudDelivery.sln not found above {AppContext.BaseDirectory}");
    }

    private static string FindBicep()
    {
        var path = typeof(BicepFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(attribute => attribute.Key == "BicepExecutable").Value!;
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"Bicep compiler not found at {path}: run `dotnet restore CloudDelivery.sln`");
        }
        // NuGet extracts package files without guaranteeing the execute bit (it depends on the extracting
        // client and the umask), so set it rather than fail on a fresh machine.
        // (The package is the linux-x64 build, so the tests run on Linux only anyway.)
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & UnixFileMode.UserExecute) == 0)
            {
                File.SetUnixFileMode(path, mode | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            }
        }
        return path;
    }

    private static async Task<BicepRun> RunAsync(string bicep, string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo(bicep)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        // The compiler is a self-contained .NET program: without libicu it aborts at start-up unless
        // globalization is invariant, and it needs no culture data to compile templates.
        start.Environment["DOTNET_SYSTEM_GLOBALIZATION_INVARIANT"] = "1";
        // No telemetry from a test run.
        start.Environment["BICEP_TELEMETRY_ENABLED"] = "false";
        using var process = Process.Start(start)!;
        var standardOutput = process.StandardOutput.ReadToEndAsync();
        var standardError = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return new BicepRun(process.ExitCode, await standardOutput, await standardError);
    }
}

/// <summary>One run of the compiler: diagnostics (errors and warnings alike) go to standard error.</summary>
public sealed record BicepRun(int ExitCode, string StandardOutput, string StandardError);
