using System.Diagnostics;

namespace CloudDelivery.Tests.Infra;

/// <summary>
/// The azd hooks in infra-bicep/hooks/: azure.yaml runs them, postprovision prints the DNS records from the
/// outputs azd puts in the environment (arrays as JSON) in zone-file form, and no hook fails a deployment
/// when what it needs is missing. Run with bash and a made-up environment; nothing here uses the network.
/// </summary>
public sealed class AzdHookTests
{
    private static readonly string Root = FindRepositoryRoot();

    [Fact]
    public void Azure_yaml_runs_each_hook_without_letting_it_fail_the_deployment()
    {
        var azureYaml = File.ReadAllText(Path.Combine(Root, "azure.yaml"));
        foreach (var hook in new[] { "preprovision", "postprovision", "postdeploy" })
        {
            Assert.Contains($"  {hook}:\n", azureYaml, StringComparison.Ordinal);
            Assert.Contains($"run: bash ./infra-bicep/hooks/{hook}.sh\n", azureYaml, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(Root, "infra-bicep", "hooks", $"{hook}.sh")), hook);
        }
        Assert.Equal(6, azureYaml.Split("continueOnError: true").Length - 1);
    }

    [Fact]
    public async Task Postprovision_prints_the_records_to_publish_from_the_azd_outputs()
    {
        var (exitCode, output) = await RunHookAsync("postprovision.sh", new()
        {
            ["OUTBOUND_IP"] = "203.0.113.7",
            ["DNS_A_RECORD"] = "mta.example.com. 3600 IN A 203.0.113.7",
            ["DNS_PTR_CHECK"] = "PTR not set yet: publish the A record, then azd env set SET_REVERSE_DNS true && azd provision",
            ["DNS_SPF_RECORDS"] = """["example.com. 3600 IN TXT \"v=spf1 ip4:203.0.113.7 -all\"","relayed.example. 3600 IN TXT \"v=spf1 include:spf.provider.example -all\""]""",
            ["DNS_DKIM_RECORDS"] = """["s1._domainkey.example.com. 3600 IN TXT \"v=DKIM1; k=rsa; p=<base64 public key of Key Vault secret dkim-s1-example-com>\""]""",
            ["DNS_TLSRPT_RECORDS"] = "[]",
            ["DNS_MTASTS_RECORDS"] = """["_mta-sts.example.com. 3600 IN TXT \"v=STSv1; id=20261201T000000\"","mta-sts.example.com. 3600 IN CNAME <host serving https://mta-sts.example.com/.well-known/mta-sts.txt>."]""",
            ["RESOLVER_ENDPOINT"] = "10.20.1.4:53",
            ["STORAGE_ACCOUNT_NAME"] = "stexample",
        });
        Assert.Equal(0, exitCode);
        var lines = output.Split('\n');
        // The records exactly as a zone file takes them, JSON escapes undone, one per line.
        Assert.Contains("mta.example.com. 3600 IN A 203.0.113.7", lines);
        Assert.Contains("example.com. 3600 IN TXT \"v=spf1 ip4:203.0.113.7 -all\"", lines);
        Assert.Contains("relayed.example. 3600 IN TXT \"v=spf1 include:spf.provider.example -all\"", lines);
        Assert.Contains("s1._domainkey.example.com. 3600 IN TXT \"v=DKIM1; k=rsa; p=<base64 public key of Key Vault secret dkim-s1-example-com>\"", lines);
        Assert.Contains("_mta-sts.example.com. 3600 IN TXT \"v=STSv1; id=20261201T000000\"", lines);
        Assert.Contains("; none (DNS_TLSRPT_RECORDS is empty)", lines);
        // The A record comes before the PTR step, and the step to set the PTR is spelled out.
        Assert.True(Array.IndexOf(lines, "mta.example.com. 3600 IN A 203.0.113.7") < Array.FindIndex(lines, line => line.Contains("PTR not set yet", StringComparison.Ordinal)));
        Assert.Contains("; then: azd env set SET_REVERSE_DNS true && azd provision", lines);
        Assert.Contains(lines, line => line.Contains("10.20.1.4:53", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith("clouddelivery status --account stexample", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Hooks_succeed_and_say_what_is_missing_when_the_environment_is_empty()
    {
        var (provisionExit, provisionOutput) = await RunHookAsync("postprovision.sh", []);
        Assert.Equal(0, provisionExit);
        Assert.Contains("(DNS_SPF_RECORDS is not in the azd environment", provisionOutput, StringComparison.Ordinal);
        Assert.Contains("RESOLVER_MODE none", provisionOutput, StringComparison.Ordinal);
        var (deployExit, deployOutput) = await RunHookAsync("postdeploy.sh", []);
        Assert.Equal(0, deployExit);
        Assert.Contains("is not in the azd environment; check by hand", deployOutput, StringComparison.Ordinal);
        // Another mode than deploy needs no key: the hook does nothing (and never runs azd).
        var (preprovisionExit, preprovisionOutput) = await RunHookAsync("preprovision.sh", new() { ["RESOLVER_MODE"] = "none" });
        Assert.Equal(0, preprovisionExit);
        Assert.Equal(string.Empty, preprovisionOutput);
    }

    private static async Task<(int ExitCode, string Output)> RunHookAsync(string hook, Dictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(Root, "infra-bicep", "hooks", hook));
        // Only what the test sets, plus a PATH for the shell's tools: no azd or az values leak in.
        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/bin:/bin";
        start.Environment["HOME"] = Path.GetTempPath();
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var standardOutput = process.StandardOutput.ReadToEndAsync();
        var standardError = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await standardOutput + await standardError);
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
}
