using System.Globalization;
using System.Text;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Addressing;

namespace CloudDelivery.Azure.Suppression;

/// <summary>
/// One suppressed address in one scope, in Table Storage: partition = scope ("global" or a sender domain in
/// lower-case A-labels), row = the address as matched (see <see cref="SuppressionKeys"/>).
/// </summary>
public sealed class SuppressionEntity : ITableEntity
{
    public string PartitionKey { get; set; } = string.Empty;

    public string RowKey { get; set; } = string.Empty;

    public DateTimeOffset? Timestamp { get; set; }

    public ETag ETag { get; set; }

    /// <summary>The address as it was given (case kept).</summary>
    public string Address { get; set; } = string.Empty;

    /// <summary>Why: the bounce's category and reply, or the operator's words; at most <see cref="SuppressionKeys.MaxReasonLength"/> characters.</summary>
    public string Reason { get; set; } = string.Empty;

    /// <summary>The bounce category's name ("bad-mailbox", "bad-domain"), or "manual" for API and CLI entries.</summary>
    public string Category { get; set; } = string.Empty;

    /// <summary>"bounce", "api" or "cli".</summary>
    public string Source { get; set; } = string.Empty;

    /// <summary>The message whose bounce added the entry; empty for manual entries.</summary>
    public string SourceMessageId { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>When the entry stops suppressing; null: never.</summary>
    public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>A tombstone: removed, kept a day so other instances' refreshes see the removal, then purged.</summary>
    public bool Removed { get; set; }

    /// <summary>True when the entry suppresses at <paramref name="now"/>.</summary>
    public bool IsLive(DateTimeOffset now) => !Removed && (ExpiresAt is not { } expires || expires > now);
}

/// <summary>A suppression that applies to a recipient: the entry's scope, reason and category.</summary>
public sealed record SuppressionMatch(string Scope, string Reason, string Category);

/// <summary>Addresses and scopes as the suppression table keys them.</summary>
public static class SuppressionKeys
{
    /// <summary>The scope of entries that apply to every sender.</summary>
    public const string Global = "global";

    /// <summary>Reasons are cut to this many characters: a reply text can be long, and every entry is held in memory.</summary>
    public const int MaxReasonLength = 200;

    /// <summary>
    /// The address as matched: the domain in lower-case A-labels (as <see cref="NextHop"/> prints it) and the
    /// local part lower-cased. RFC 5321 §2.4 lets a server treat local parts case-sensitively, but almost none
    /// do, and a list that missed "Bob@" after "bob@" bounced would not protect the sender's reputation. The
    /// characters Table keys refuse ('/', '\', '#', '?', controls) and '%' itself are percent-escaped.
    /// </summary>
    public static string RowKeyOf(EmailAddress address) =>
        Escape(address.LocalPart.ToLowerInvariant() + "@" + address.Domain.ToString());

    /// <summary>Parses an address as submissions do (one pair of angle brackets allowed).</summary>
    public static bool TryParseAddress(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out EmailAddress? address, out string error)
    {
        var bare = text is { Length: >= 2 } && text[0] == '<' && text[^1] == '>' ? text[1..^1] : text;
        return EmailAddress.TryParse(bare, out address, out error);
    }

    /// <summary>
    /// A scope as stored: "global" (also for null or empty) or a sender domain in lower-case A-labels.
    /// </summary>
    public static bool TryParseScope(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? scope, out string error)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Trim().Equals(Global, StringComparison.OrdinalIgnoreCase))
        {
            (scope, error) = (Global, string.Empty);
            return true;
        }
        if (NextHop.TryParse(text.Trim(), out var hop, out error))
        {
            scope = Escape(hop.ToString());
            return true;
        }
        scope = null;
        error = $"scope '{text}' is neither global nor a domain: {error}";
        return false;
    }

    /// <summary>The sender-domain scope of <paramref name="sender"/>.</summary>
    public static string ScopeOf(EmailAddress sender) => Escape(sender.Domain.ToString());

    /// <summary>A bounded reason: control characters become spaces, and it is cut at <see cref="MaxReasonLength"/>.</summary>
    public static string BoundReason(string? reason)
    {
        var text = new string((reason ?? string.Empty).Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Trim();
        return text.Length <= MaxReasonLength ? text : text[..MaxReasonLength];
    }

    private static string Escape(string key)
    {
        if (!key.Any(NeedsEscape))
        {
            return key;
        }
        var builder = new StringBuilder(key.Length + 8);
        foreach (var c in key)
        {
            if (NeedsEscape(c))
            {
                // Every character that needs it is below U+0100 ('/', '\', '#', '?', '%', C0 and C1 controls).
                builder.Append('%').Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }
        return builder.ToString();
    }

    // https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#characters-disallowed-in-key-fields
    private static bool NeedsEscape(char c) => c is '/' or '\\' or '#' or '?' or '%' || char.IsControl(c);
}
