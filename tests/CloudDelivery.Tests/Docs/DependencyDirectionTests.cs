using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace CloudDelivery.Tests.Docs;

/// <summary>
/// The dependency direction that docs/architecture.md promises, read from the sources themselves, so the
/// map cannot drift from the house: the engine's namespaces form no cycle, the engine knows nothing of
/// Azure or hosting, and nothing that ships references a test peer.
/// </summary>
public sealed partial class DependencyDirectionTests
{
    [Fact]
    public void The_engines_namespaces_depend_on_each_other_one_way()
    {
        var graph = EngineNamespaceGraph();
        Assert.Contains("Delivery", graph.Keys);
        Assert.Contains("Smtp", graph["Delivery"]);

        var cycles = graph.Keys.SelectMany(from => graph[from].Where(to => Reaches(graph, to, from)).Select(to => $"{from} -> {to}")).ToList();

        Assert.True(cycles.Count == 0, "namespace cycles in src/CloudDelivery: " + string.Join(", ", cycles));
    }

    [Theory]
    [InlineData("Smtp", "Delivery")]
    [InlineData("Dns", "Delivery")]
    [InlineData("Messages", "Delivery")]
    [InlineData("Dane", "Delivery")]
    [InlineData("Dialing", "Smtp")]
    public void A_lower_namespace_does_not_reach_up(string lower, string upper)
    {
        var graph = EngineNamespaceGraph();

        Assert.False(Reaches(graph, lower, upper), $"CloudDelivery.{lower} depends on CloudDelivery.{upper}");
    }

    [Fact]
    public void The_engine_uses_no_azure_and_no_hosting()
    {
        var offenders = SourceFiles("src/CloudDelivery")
            .Where(file => AzureOrHosting().IsMatch(File.ReadAllText(file)))
            .Select(file => Path.GetRelativePath(RepositoryRoot, file))
            .ToList();

        Assert.True(offenders.Count == 0, "engine files using Azure or hosting: " + string.Join(", ", offenders));
    }

    [Fact]
    public void Nothing_that_ships_references_a_project_under_tests()
    {
        var shipped = Directory.GetFiles(Path.Combine(RepositoryRoot, "src"), "*.csproj", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(Path.Combine(RepositoryRoot, "functions"), "*.csproj", SearchOption.AllDirectories))
            .ToList();
        Assert.NotEmpty(shipped);

        var offenders = shipped
            .SelectMany(project => XDocument.Load(project).Descendants("ProjectReference")
                .Select(reference => (string?)reference.Attribute("Include") ?? string.Empty)
                .Where(include => include.Replace('\\', '/').Contains("/tests/", StringComparison.Ordinal) || include.Replace('\\', '/').StartsWith("tests/", StringComparison.Ordinal))
                .Select(include => $"{Path.GetFileName(project)} -> {include}"))
            .ToList();

        Assert.True(offenders.Count == 0, "shipped projects referencing test projects: " + string.Join(", ", offenders));
    }

    /// <summary>
    /// Namespace → the engine namespaces its files name, from using directives and qualified names. A
    /// name in code (not in comments or strings) counts for the longest namespace the engine declares that it starts with, so
    /// <c>CloudDelivery.Dialing.AddressPolicy</c> is Dialing and a sub-namespace is a node of its own.
    /// </summary>
    private static Dictionary<string, HashSet<string>> EngineNamespaceGraph()
    {
        var files = SourceFiles("src/CloudDelivery").Select(file => CommentsAndStrings().Replace(File.ReadAllText(file), " ")).ToList();
        var declared = files.Select(OwnNamespace).ToHashSet();
        var graph = declared.ToDictionary(ns => ns, _ => new HashSet<string>());
        foreach (var text in files)
        {
            var own = OwnNamespace(text);
            foreach (Match reference in EngineReference().Matches(text))
            {
                var name = reference.Groups[1].Value;
                var target = declared.Where(ns => ns.Length > 0 && (name == ns || name.StartsWith(ns + ".", StringComparison.Ordinal))).MaxBy(ns => ns.Length);
                if (target is not null && target != own)
                {
                    graph[own].Add(target);
                }
            }
        }
        return graph;
    }

    private static string OwnNamespace(string text) => FileNamespace().Match(text) is { Success: true } m ? m.Groups[1].Value : string.Empty;

    private static bool Reaches(Dictionary<string, HashSet<string>> graph, string from, string to)
    {
        var seen = new HashSet<string>();
        var queue = new Queue<string>([from]);
        while (queue.TryDequeue(out var current))
        {
            foreach (var next in graph.GetValueOrDefault(current) ?? [])
            {
                if (next == to)
                {
                    return true;
                }
                if (seen.Add(next))
                {
                    queue.Enqueue(next);
                }
            }
        }
        return false;
    }

    private static IEnumerable<string> SourceFiles(string relative) =>
        Directory.GetFiles(Path.Combine(RepositoryRoot, relative), "*.cs", SearchOption.AllDirectories)
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    private static string RepositoryRoot { get; } = FindRepositoryRoot();

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "CloudDelivery.sln")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException("CloudDelivery.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^namespace CloudDelivery(?:\.([\w.]+))?;", RegexOptions.Multiline)]
    private static partial Regex FileNamespace();

    /// <summary>A using directive or a qualified name under CloudDelivery (the whole dotted name).</summary>
    [GeneratedRegex(@"\bCloudDelivery\.([A-Z]\w*(?:\.[A-Z]\w*)*)")]
    private static partial Regex EngineReference();

    /// <summary>Comments and string literals: a meter named "CloudDelivery.Delivery" is not a dependency.</summary>
    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|@?""(?:[^""\\\n]|\\.)*""", RegexOptions.Singleline)]
    private static partial Regex CommentsAndStrings();

    [GeneratedRegex(@"^using (Azure|Microsoft\.Extensions\.Hosting|Microsoft\.AspNetCore|CloudDelivery\.Azure)\b", RegexOptions.Multiline)]
    private static partial Regex AzureOrHosting();
}
