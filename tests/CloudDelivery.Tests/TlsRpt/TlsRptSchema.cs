using System.Text.Json;
using Json.Schema;

namespace CloudDelivery.Tests.TlsRpt;

/// <summary>The RFC 8460 §4.4 report schema (tlsrpt-report.schema.json, written from the RFC), for validating reports.</summary>
internal static class TlsRptSchema
{
    private static readonly Lazy<JsonSchema> Schema = new(() => JsonSchema.FromText(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "TlsRpt", "tlsrpt-report.schema.json"))));

    /// <summary>The validation errors of <paramref name="json"/>, empty when it is a valid report.</summary>
    public static IReadOnlyList<string> Errors(byte[] json)
    {
        using var document = JsonDocument.Parse(json);
        var result = Schema.Value.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        return result.IsValid
            ? []
            : (result.Details ?? []).Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")).ToList();
    }
}
