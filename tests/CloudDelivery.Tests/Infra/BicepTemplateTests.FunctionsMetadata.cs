using System.Text.Json.Nodes;
using CloudDelivery.Azure.Storage;
using CloudDelivery.Functions;

namespace CloudDelivery.Tests.Infra;

/// <summary>
/// The Functions app's triggers as the Worker SDK wrote them into functions.metadata (what the runtime
/// indexes), checked against the app settings of the compiled template and the local.settings example:
/// a trigger whose %setting% the host cannot resolve is not indexed at all, and one listening on another
/// queue than the worker writes to would leave every wake-up unanswered.
/// </summary>
public partial class BicepTemplateTests
{
    [Fact]
    public void Every_queue_trigger_takes_its_queue_from_an_app_setting_the_template_sets_to_the_apps_queue()
    {
        var settings = AppSettings();
        var triggers = Triggers("queueTrigger");
        Assert.NotEmpty(triggers);
        var defaults = new OutboundStorageOptions();

        foreach (var (function, binding) in triggers)
        {
            var queueName = binding["queueName"]!.GetValue<string>();
            var setting = SettingOf(queueName) ?? throw new Xunit.Sdk.XunitException($"{function}: queue '{queueName}' is a literal, not the app's setting");
            Assert.True(settings.TryGetValue(setting, out var value), $"{function}: the template does not set {setting}");
            // The template's value is the app's own default, so the worker (which reads the same key) and
            // the trigger agree even where the setting is absent from the worker's configuration.
            Assert.Equal(defaults.WakeUpQueue, value);
            Assert.Equal("CloudDelivery__Storage__WakeUpQueue", setting);
            // The runtime's poison queue is "<queue>-poison"; the app's must be that one.
            Assert.Equal(value + "-poison", settings["CloudDelivery__Storage__PoisonQueue"]);

            var connection = binding["connection"]!.GetValue<string>();
            Assert.Equal(DeliveryFunctions.StorageConnection, connection);
            // Identity-based connection: the prefix's service URI and credential (no connection string).
            Assert.Contains(connection + "__queueServiceUri", settings.Keys);
            Assert.Equal("managedidentity", settings[connection + "__credential"]);
            Assert.DoesNotContain(connection, settings.Keys);
        }
    }

    [Fact]
    public void Every_timer_trigger_has_a_six_field_schedule_or_a_setting_the_template_sets()
    {
        var settings = AppSettings();
        var triggers = Triggers("timerTrigger");
        Assert.NotEmpty(triggers);

        foreach (var (function, binding) in triggers)
        {
            var schedule = binding["schedule"]!.GetValue<string>();
            if (SettingOf(schedule) is { } setting)
            {
                Assert.True(settings.TryGetValue(setting, out var value), $"{function}: the template does not set {setting}");
                schedule = value;
            }
            // NCRONTAB with seconds (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
            Assert.True(schedule.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6, $"{function}: '{schedule}' is not a six-field NCRONTAB expression");
        }
    }

    [Fact]
    public void The_local_settings_example_runs_every_trigger_against_azurite()
    {
        var path = Path.Combine(bicep.TemplateDirectory, "..", "functions", "CloudDelivery.Functions", "local.settings.example.json");
        var values = JsonNode.Parse(File.ReadAllText(path))!["Values"]!.AsObject();

        Assert.Equal("dotnet-isolated", values["FUNCTIONS_WORKER_RUNTIME"]!.GetValue<string>());
        Assert.Equal("UseDevelopmentStorage=true", values["AzureWebJobsStorage"]!.GetValue<string>());
        foreach (var (function, binding) in Triggers("queueTrigger"))
        {
            Assert.Equal("UseDevelopmentStorage=true", values[binding["connection"]!.GetValue<string>()]?.GetValue<string>());
            var setting = SettingOf(binding["queueName"]!.GetValue<string>())!;
            Assert.True(values.ContainsKey(setting), $"{function}: local.settings.example.json lacks {setting}");
        }
        // The worker's storage is the same emulator (its default), not an account by name.
        Assert.False(values.ContainsKey("CloudDelivery__Storage__AccountName"));
    }

    /// <summary>"%A:B%" → "A__B", the app setting's name; null for a literal.</summary>
    private static string? SettingOf(string value) =>
        value.Length > 2 && value[0] == '%' && value[^1] == '%' ? value[1..^1].Replace(":", "__", StringComparison.Ordinal) : null;

    /// <summary>The bindings of <paramref name="type"/> in the functions.metadata the last build of the Functions app wrote.</summary>
    private List<(string Function, JsonObject Binding)> Triggers(string type)
    {
        var output = Path.Combine(bicep.TemplateDirectory, "..", "functions", "CloudDelivery.Functions", "bin");
        var metadata = Directory.EnumerateFiles(output, "functions.metadata", SearchOption.AllDirectories)
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault() ?? throw new Xunit.Sdk.XunitException($"no functions.metadata under {output}: build the Functions app");
        return [.. JsonNode.Parse(File.ReadAllText(metadata))!.AsArray()
            .SelectMany(function => function!["bindings"]!.AsArray()
                .Where(binding => binding!["type"]!.GetValue<string>() == type)
                .Select(binding => (function["name"]!.GetValue<string>(), binding!.AsObject())))];
    }
}
