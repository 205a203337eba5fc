namespace CloudDelivery.Tls;

/// <summary>
/// Where the operator's TLS policy table comes from (section <see cref="SectionPath"/>): a file, entries
/// inline in one setting, or both (the file's entries first). The format is that of
/// <see cref="OperatorTlsPolicies"/>; any bad entry stops start-up with one line naming the key and the line.
/// </summary>
public sealed class OperatorTlsPolicyOptions
{
    public const string SectionPath = "CloudDelivery:TlsPolicy";

    /// <summary>A policy file is a short table; anything larger is the wrong file.</summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>Path to a policy file: one "destination level [match=...]" entry a line, '#' comments.</summary>
    public string? File { get; set; }

    /// <summary>The same entries inline, separated by ';' (an Azure app setting can carry a few without a file).</summary>
    public string? Policies { get; set; }

    /// <summary>The table, or the problems each as one line naming its key (under <paramref name="sectionPath"/>) and where.</summary>
    public (OperatorTlsPolicies? Policies, IReadOnlyList<string> Problems) Load(string sectionPath = SectionPath)
    {
        var entries = new List<OperatorTlsPolicy>();
        var problems = new List<string>();
        if (!string.IsNullOrWhiteSpace(File))
        {
            var key = $"{sectionPath}:{nameof(File)}";
            string? text = null;
            try
            {
                var info = new FileInfo(File);
                if (!info.Exists)
                {
                    problems.Add($"{key} {File}: no such file");
                }
                else if (info.Length > MaxFileBytes)
                {
                    problems.Add($"{key} {File}: larger than {MaxFileBytes} bytes");
                }
                else
                {
                    text = System.IO.File.ReadAllText(File);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                problems.Add($"{key} {File}: {e.Message}");
            }
            if (text is not null)
            {
                var (table, found) = OperatorTlsPolicies.ParseFile(text, File);
                problems.AddRange(found.Select(p => $"{key} {File} {p}"));
                entries.AddRange(table?.Entries ?? []);
            }
        }
        if (!string.IsNullOrWhiteSpace(Policies))
        {
            var key = $"{sectionPath}:{nameof(Policies)}";
            var (table, found) = OperatorTlsPolicies.ParseInline(Policies, key);
            problems.AddRange(found.Select(p => $"{key} {p}"));
            entries.AddRange(table?.Entries ?? []);
        }
        return problems.Count > 0 ? (null, problems) : (OperatorTlsPolicies.Of(entries), problems);
    }
}
