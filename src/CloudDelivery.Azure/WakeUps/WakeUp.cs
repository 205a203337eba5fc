using System.Text.Json;
using System.Text.Json.Serialization;

namespace CloudDelivery.Azure.WakeUps;

/// <summary>The queue message asking a worker to deliver what is ready for one recipient domain.</summary>
public sealed record WakeUp([property: JsonPropertyName("domain")] string Domain)
{
    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>Parses a queue message body.</summary>
    /// <exception cref="FormatException">Not a wake-up: the message belongs in the poison queue.</exception>
    public static WakeUp Parse(string text)
    {
        WakeUp? wakeUp;
        try
        {
            wakeUp = JsonSerializer.Deserialize<WakeUp>(text);
        }
        catch (JsonException e)
        {
            throw new FormatException($"wake-up is not JSON: {e.Message}", e);
        }
        if (wakeUp is null || string.IsNullOrWhiteSpace(wakeUp.Domain) || wakeUp.Domain.Length > 255 || wakeUp.Domain.Any(c => c < 0x21 || c > 0x7e || c is '/' or '\\' or '#' or '?' or '\''))
        {
            throw new FormatException("wake-up has no valid domain");
        }
        return wakeUp;
    }
}
