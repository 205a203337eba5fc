using System.Text;
using System.Text.Json;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Submission;
using CsCheck;

namespace CloudDelivery.Tests.Queue;

/// <summary>
/// The JSON form's parser on generated input: for any bytes it returns a request or a 400, never another
/// exception; and what it returns is what the JSON said.
/// </summary>
public class SubmissionJsonParserTests
{
    private static readonly Gen<string> Text = Gen.OneOf(
        Gen.String,
        Gen.Const("s@sender.example"),
        Gen.Const(""),
        Gen.Const(Convert.ToBase64String("Subject: x\r\n\r\nhi\r\n"u8.ToArray())),
        Gen.Char["AZaz09+/=\\\"\u00e9\ud800 "].Array[0, 30].Select(c => new string(c)));

    /// <summary>Any JSON value, nested a little.</summary>
    private static readonly Gen<JsonElementText> Value = Gen.Recursive<JsonElementText>((depth, self) =>
    {
        var leaf = Gen.OneOf(
            Gen.Const(new JsonElementText("null")),
            Gen.Bool.Select(b => new JsonElementText(b ? "true" : "false")),
            Gen.Long.Select(n => new JsonElementText(n.ToString(System.Globalization.CultureInfo.InvariantCulture))),
            Gen.Double.Select(d => new JsonElementText(double.IsFinite(d) ? d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "1e999")),
            Text.Select(t => new JsonElementText(JsonSerializer.Serialize(t))));
        return depth >= 3 ? leaf : Gen.OneOf(
            leaf,
            self.Array[0, 4].Select(a => new JsonElementText("[" + string.Join(',', a.Select(v => v.Json)) + "]")),
            Gen.Select(Gen.OneOf(Gen.Const("from"), Gen.Const("to"), Gen.Const("message"), Gen.Const("requireTls"), Gen.Const("tlsRequiredNo"), Gen.String), self)
                .Array[0, 6].Select(p => new JsonElementText("{" + string.Join(',', p.Select(kv => JsonSerializer.Serialize(kv.Item1) + ":" + kv.Item2.Json)) + "}")));
    });

    /// <summary>Submission-shaped objects, with each field sometimes of the wrong type or missing.</summary>
    private static readonly Gen<string> Submission = Gen.Select(
        Gen.OneOf(Text.Select(t => JsonSerializer.Serialize(t)), Value.Select(v => v.Json)),
        Gen.OneOf(Text.Array[0, 3].Select(a => JsonSerializer.Serialize(a)), Value.Select(v => v.Json)),
        Gen.OneOf(Text.Select(t => JsonSerializer.Serialize(t)), Value.Select(v => v.Json)),
        Gen.Int[0, 7],
        (from, to, message, drop) => "{" + string.Join(',', new[] { ("from", from), ("to", to), ("message", message) }.Where((_, i) => (drop & (1 << i)) == 0).Select(kv => $"\"{kv.Item1}\":{kv.Item2}")) + "}");

    /// <summary>Bytes of any of the above with one byte changed, or plain random bytes.</summary>
    internal static readonly Gen<byte[]> Inputs = Gen.OneOf(
        Gen.Byte.Array[0, 200],
        Gen.OneOf(Submission, Value.Select(v => v.Json)).Select(Encoding.UTF8.GetBytes),
        Gen.Select(Submission, Gen.Int[0, 1000], Gen.Byte, (json, at, b) =>
        {
            var bytes = Encoding.UTF8.GetBytes(json);
            if (bytes.Length > 0)
            {
                bytes[at % bytes.Length] = b;
            }
            return bytes;
        }));

    /// <summary>Parses a copy (the parser decodes in place); a request, or null for a 400.</summary>
    internal static SubmissionRequest? Parse(byte[] bytes)
    {
        var buffer = bytes.ToArray();
        try
        {
            return SubmissionEndpoint.ParseJson(buffer, buffer.Length);
        }
        catch (SubmissionEndpoint.BadRequestException e)
        {
            Assert.Equal(400, e.Status);
            return null;
        }
    }

    [Fact]
    public void For_any_bytes_the_parser_returns_a_request_or_a_400()
    {
        Inputs.Sample(bytes => Parse(bytes), iter: 20_000);
    }

    private static readonly JsonSerializerOptions EscapeEverything = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.Default };

    private static readonly JsonSerializerOptions EscapeLittle = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    [Fact]
    public void A_well_formed_submission_is_read_as_written_whatever_the_encoder_escapes()
    {
        Gen.Select(Gen.Byte.Array[1, 300], Text.Array[1, 3], Gen.Bool, Gen.Bool).Sample((message, to, requireTls, escapeEverything) =>
        {
            var options = escapeEverything ? EscapeEverything : EscapeLittle;
            var json = JsonSerializer.SerializeToUtf8Bytes(new { from = "s@sender.example", to, message = Convert.ToBase64String(message), requireTls }, options);

            var request = Parse(json);

            Assert.NotNull(request);
            // As the encoder wrote them (it replaces lone surrogates with U+FFFD).
            Assert.Equal(JsonDocument.Parse(json).RootElement.GetProperty("to").EnumerateArray().Select(e => e.GetString()), request.Recipients);
            Assert.Equal(requireTls, request.RequireTls);
            Assert.Equal(message, ((MemoryStream)request.Message).ToArray());
        }, iter: 5_000);
    }

    [Theory]
    [InlineData("{\"to\":[null]}")]
    [InlineData("{\"from\":\"s@x\",\"to\":[null],\"message\":\"\"}")]
    [InlineData("{\"from\":1,\"to\":[],\"message\":\"\"}")]
    [InlineData("{\"from\":\"s@x\",\"to\":\"r@y\",\"message\":\"\"}")]
    [InlineData("{\"from\":\"s@x\",\"to\":[],\"message\":\"!!!!\"}")]
    [InlineData("{\"from\":\"s@x\",\"to\":[],\"message\":\"\"} {}")]
    [InlineData("[]")]
    [InlineData("")]
    public void Wrong_shapes_are_400s(string json) => Assert.Null(Parse(Encoding.UTF8.GetBytes(json)));

    /// <summary>A JSON text, kept as a record so CsCheck prints it when shrinking.</summary>
    internal sealed record JsonElementText(string Json);
}
