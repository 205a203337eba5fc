using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Telemetry;
using CloudDelivery.Delivery;
using CloudDelivery.Smtp;

namespace CloudDelivery.Azure.Events;

/// <summary>
/// Builds the CloudEvents 1.0 event of a recipient's latest transition, in the structured JSON format
/// (CloudEvents JSON Event Format 1.0 §3): the context attributes at the top level and the data as a JSON
/// object under "data". Written by hand with <see cref="Utf8JsonWriter"/>: the attributes are few and
/// fixed, and the bytes are stored once and handed to every sink unchanged.
/// </summary>
public sealed class RecipientEvents(EventOptions options, string hostname)
{
    /// <summary>The prefix of every event type: CloudDelivery.Recipient.Delivered and so on.</summary>
    public const string TypePrefix = "CloudDelivery.Recipient.";

    /// <summary>Digits of the sequence attribute, zero-padded so that it sorts as a string (CloudEvents sequence extension).</summary>
    public const int SequenceDigits = 4;

    private readonly byte[] salt = Encoding.UTF8.GetBytes(options.AddressSalt ?? string.Empty);

    /// <summary>The source attribute: this service, by its host name (CloudEvents 1.0 §3.1.1 "source" is a URI-reference).</summary>
    public string Source { get; } = $"/clouddelivery/{hostname}";

    /// <summary>The CloudEvents type of a <see cref="DeliveryEvent.Type"/> as the queue writes it ("queued", "retry", …).</summary>
    public static string TypeOf(string deliveryEventType) => TypePrefix + deliveryEventType switch
    {
        "queued" => "Queued",
        "delivered" => "Delivered",
        "delayed" => "Delayed",
        "throttled" => "Throttled",
        "deferred" => "Deferred",
        "failed" => "Failed",
        "expired" => "Expired",
        "suppressed" => "Suppressed",
        "retry" or "retried" => "Retried",
        "dropped" => "Dropped",
        "held" => "Held",
        "released" => "Released",
        // A transition added later still becomes an event, named after its own type.
        var other when other.Length > 0 => char.ToUpperInvariant(other[0]) + other[1..],
        _ => "Unknown",
    };

    /// <summary>The event id of transition <paramref name="sequence"/> of a recipient: the same for every publication of it.</summary>
    public static string IdOf(string recipientId, int sequence) => $"{recipientId}:{SequenceOf(sequence)}";

    public static string SequenceOf(int sequence) => sequence.ToString(new string('0', SequenceDigits), CultureInfo.InvariantCulture);

    /// <summary>
    /// The event of <paramref name="record"/>'s latest <see cref="DeliveryEvent"/>, with the delivery result
    /// that caused it when there is one (TLS posture and a locally decided failure's category come only from it).
    /// </summary>
    public OutboxEvent Build(RecipientRecord record, RecipientResult? result)
    {
        var log = record.EventList;
        var sequence = Math.Max(0, log.Count - 1);
        var transition = log.Count > 0 ? log[^1] : new DeliveryEvent(record.SubmittedAt, "queued", string.Empty);
        var id = IdOf(record.Id, sequence);
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("specversion", "1.0");
            json.WriteString("id", id);
            json.WriteString("source", Source);
            json.WriteString("type", TypeOf(transition.Type));
            json.WriteString("subject", record.Id);
            json.WriteString("time", Rfc3339(transition.At));
            json.WriteString("datacontenttype", "application/json");
            json.WriteString("sequence", SequenceOf(sequence));
            json.WritePropertyName("data");
            WriteData(json, record, transition, result);
            json.WriteEndObject();
        }
        return new OutboxEvent(id, SenderDomainOf(record.Sender), buffer.WrittenMemory.ToArray());
    }

    private void WriteData(Utf8JsonWriter json, RecipientRecord record, DeliveryEvent transition, RecipientResult? result)
    {
        json.WriteStartObject();
        json.WriteString("messageId", record.MessageId);
        json.WriteString("recipientId", record.Id);
        json.WriteString("recipientDomain", record.Domain);
        if (options.IncludeAddresses)
        {
            json.WriteString("recipient", record.Recipient);
        }
        else
        {
            json.WriteString("recipientHash", HashOf(record.Recipient));
        }
        json.WriteString("sender", record.Sender);
        json.WriteStartObject("tags");
        foreach (var (key, value) in record.TagMap)
        {
            json.WriteString(key, value);
        }
        json.WriteEndObject();
        json.WriteNumber("attempt", record.Attempts);
        json.WriteString("detail", Scrub(transition.Detail, record.Recipient));
        var attempted = result is not null || record.LastAttemptAt is not null;
        var reply = result?.Reply ?? new SmtpReply(record.LastCode, record.LastEnhancedCode, record.LastText ?? string.Empty);
        if (attempted && IsAttemptOutcome(transition.Type))
        {
            json.WriteStartObject("reply");
            json.WriteNumber("code", reply.Code);
            if (reply.EnhancedCode is { } enhanced)
            {
                json.WriteString("enhancedCode", enhanced);
            }
            json.WriteString("text", Scrub(reply.Text, record.Recipient));
            json.WriteEndObject();
            if ((result?.Host ?? record.LastHost) is { } host)
            {
                json.WriteString("mxHost", host);
            }
            if (result is not null)
            {
                json.WriteString("tls", RecipientOutcome.TlsName(result.Tls));
            }
            if (transition.Type is "failed" or "expired" or "delayed" or "throttled")
            {
                // The category Apply stored, by the configured classifier; older records compute it from their reply.
                json.WriteString("category", record.LastCategory ?? BounceClassification.Name(result is not null ? BounceClassification.Of(result) : BounceClassification.Of(reply)));
            }
        }
        if (transition.Type is "delayed" or "throttled" or "deferred")
        {
            json.WriteString("nextAttemptAt", Rfc3339(record.NextAttemptAt));
        }
        if (transition.Type is "throttled" or "deferred")
        {
            // How long the receiver (or our own budget) asked us to wait: a deferral spends no attempt.
            json.WriteNumber("retryAfterSeconds", Math.Max(0, (long)(record.NextAttemptAt - transition.At).TotalSeconds));
        }
        json.WriteEndObject();
    }

    /// <summary>Transitions decided by a delivery attempt: they carry its reply.</summary>
    private static bool IsAttemptOutcome(string type) => type is "delivered" or "delayed" or "failed" or "expired" or "throttled" or "deferred";

    /// <summary>Lower-case hex SHA-256 over the salt's bytes followed by the address in UTF-8.</summary>
    public string HashOf(string address)
    {
        var bytes = Encoding.UTF8.GetBytes(address);
        var input = new byte[salt.Length + bytes.Length];
        salt.CopyTo(input, 0);
        bytes.CopyTo(input, salt.Length);
        return Convert.ToHexStringLower(SHA256.HashData(input));
    }

    /// <summary>
    /// With addresses off, a server's reply text or a detail naming the recipient ("550 &lt;a@b&gt; unknown")
    /// must not carry the address into the event bus either.
    /// </summary>
    private string Scrub(string text, string address) =>
        options.IncludeAddresses || address.Length == 0 ? text : text.Replace(address, "[recipient]", StringComparison.OrdinalIgnoreCase);

    private static string SenderDomainOf(string sender)
    {
        var at = sender.LastIndexOf('@');
        return at < 0 ? string.Empty : sender[(at + 1)..].ToLowerInvariant();
    }

    /// <summary>RFC 3339 §5.6 in UTC with milliseconds, as CloudEvents' "time" requires.</summary>
    private static string Rfc3339(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
