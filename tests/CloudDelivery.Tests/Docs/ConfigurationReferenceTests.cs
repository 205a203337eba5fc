using System.Collections;
using System.Reflection;
using CloudDelivery.Azure.Hosting;

namespace CloudDelivery.Tests.Docs;

/// <summary>
/// The README's configuration reference is what operators set in app settings: every setting the options
/// tree binds must be listed there under its environment variable name, and nothing listed may be stale.
/// </summary>
public class ConfigurationReferenceTests
{
    [Fact]
    public void Every_setting_is_documented_under_its_environment_variable_name()
    {
        var readme = File.ReadAllText(FindReadme());
        var names = AllSettingNames().ToList();
        Assert.NotEmpty(names);

        var missing = names.Where(name => !readme.Contains($"`{name}`", StringComparison.Ordinal)).ToList();

        Assert.True(missing.Count == 0, "README's configuration reference lacks: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_documented_setting_exists()
    {
        var readme = File.ReadAllText(FindReadme());
        var names = AllSettingNames().ToHashSet(StringComparer.Ordinal);
        var documented = System.Text.RegularExpressions.Regex.Matches(readme, @"`(CloudDelivery__[A-Za-z0-9_]+)`").Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);

        var stale = documented.Where(name => !names.Contains(name)).ToList();

        Assert.True(stale.Count == 0, "README names settings that do not exist: " + string.Join(", ", stale));
    }

    [Fact]
    public void Every_flag_that_writes_a_key_is_listed_with_its_key_and_the_key_is_a_documented_setting()
    {
        var lines = File.ReadAllLines(FindReadme());
        var settings = AllSettingNames().ToHashSet(StringComparer.Ordinal);

        var problems = CloudDelivery.Cli.Commands.ConfigurationFlags.All.SelectMany(flag =>
        {
            var name = flag.Key.Replace(":", "__", StringComparison.Ordinal);
            var listed = lines.Any(line => line.StartsWith($"| `{flag.Flag}`", StringComparison.Ordinal) && line.Contains($"`{name}`", StringComparison.Ordinal));
            var documented = settings.Contains(name) && lines.Any(line => line.StartsWith($"| `{name}`", StringComparison.Ordinal));
            return (listed ? [] : new[] { $"{flag.Flag} -> {name} not in the flag table" }).Concat(documented ? [] : [$"{name} ({flag.Flag}) not a documented setting"]);
        }).ToList();

        Assert.True(problems.Count == 0, string.Join("; ", problems));
    }

    /// <summary>Every options type and the section it is bound from (each component registers its own).</summary>
    internal static readonly (Type Type, string Section)[] BoundSections =
    [
        (typeof(CloudDeliveryOptions), CloudDeliveryOptions.SectionName),
        (typeof(CloudDelivery.Delivery.DeliveryOptions), CloudDeliveryOptions.DeliverySection),
        (typeof(CloudDelivery.Delivery.SmarthostOptions), CloudDeliveryOptions.SmarthostSection),
        (typeof(DkimOptions), DkimOptions.SectionPath),
        (typeof(CloudDelivery.Shaping.TrafficShapingOptions), CloudDelivery.Shaping.TrafficShapingOptions.SectionPath),
        (typeof(BounceOptions), BounceOptions.SectionPath),
        (typeof(CloudDelivery.Tls.OperatorTlsPolicyOptions), CloudDelivery.Tls.OperatorTlsPolicyOptions.SectionPath),
        (typeof(CloudDelivery.Azure.Events.EventSinkOptions), CloudDelivery.Azure.Events.EventSinkOptions.SectionPath),
        (typeof(CloudDelivery.Azure.Events.EventOptions), CloudDelivery.Azure.Events.EventOptions.SectionPath),
        (typeof(CloudDelivery.Azure.Shaping.SharedShapingOptions), CloudDelivery.Azure.Shaping.SharedShapingOptions.SectionPath),
        // Bound by the exporters on their own, before the container exists.
        (typeof(CloudDelivery.Azure.Telemetry.TelemetryOptions), CloudDelivery.Azure.Telemetry.TelemetryOptions.SectionName),
    ];

    /// <summary>Environment variable names of every setting an options type binds.</summary>
    internal static IEnumerable<string> AllSettingNames() =>
        BoundSections.SelectMany(bound => SettingNames(bound.Type, bound.Section.Replace(":", "__", StringComparison.Ordinal)));

    /// <summary>Environment variable names of the bindable leaves (lists as their first element, "__0__").</summary>
    private static IEnumerable<string> SettingNames(Type type, string prefix)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.GetIndexParameters().Length == 0))
        {
            var name = $"{prefix}__{property.Name}";
            var propertyType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (IsLeaf(propertyType))
            {
                yield return name;
            }
            else if (propertyType != typeof(string) && typeof(IEnumerable).IsAssignableFrom(propertyType) && propertyType.IsGenericType)
            {
                var element = propertyType.GetGenericArguments()[0];
                if (IsLeaf(element))
                {
                    yield return name;
                }
                else
                {
                    foreach (var inner in SettingNames(element, $"{name}__0"))
                    {
                        yield return inner;
                    }
                }
            }
            else
            {
                foreach (var inner in SettingNames(propertyType, name))
                {
                    yield return inner;
                }
            }
        }
    }

    private static bool IsLeaf(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan) || type == typeof(DateTimeOffset) || type == typeof(Uri);

    private static string FindReadme()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "README.md");
            if (File.Exists(candidate) && File.Exists(Path.Combine(directory.FullName, "CloudDelivery.sln")))
            {
                return candidate;
            }
        }
        throw new FileNotFoundException("README.md next to CloudDelivery.sln not found above " + AppContext.BaseDirectory);
    }
}
