using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using CloudDelivery.Azure.Events;

namespace CloudDelivery.Tests.Events;

/// <summary>
/// Webhook signatures as receivers check them: Standard Webhooks' own example vector, tampering and replay
/// refused, rotation tolerated, and the README's receiver snippet (a copy of which is compiled below)
/// agreeing with <see cref="WebhookSignature"/>.
/// </summary>
public partial class SinkSignatureTests
{
    // The example of the Standard Webhooks specification, which the README also shows.
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string Id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long Timestamp = 1614265330;
    private const string Body = """{"test": 2432232314}""";
    private const string Expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    private static readonly DateTimeOffset SentAt = DateTimeOffset.FromUnixTimeSeconds(Timestamp);

    [Fact]
    public void The_signature_of_the_specification_example_is_the_specified_one()
    {
        Assert.Equal(Expected, new WebhookSignature(Secret).Sign(Id, Timestamp, Encoding.UTF8.GetBytes(Body)));
    }

    [Fact]
    public void A_signature_verifies_and_a_tampered_body_id_or_timestamp_does_not()
    {
        var signature = new WebhookSignature(Secret);
        var body = Encoding.UTF8.GetBytes(Body);

        Assert.True(signature.Verify(Id, "1614265330", Expected, body, SentAt.AddSeconds(30)));
        Assert.False(signature.Verify(Id, "1614265330", Expected, Encoding.UTF8.GetBytes("""{"test": 2432232315}"""), SentAt));
        Assert.False(signature.Verify("msg_other", "1614265330", Expected, body, SentAt));
        Assert.False(signature.Verify(Id, "1614265331", Expected, body, SentAt));
        Assert.False(new WebhookSignature("whsec_" + Convert.ToBase64String(new byte[24])).Verify(Id, "1614265330", Expected, body, SentAt));
    }

    [Fact]
    public void A_timestamp_outside_the_tolerance_is_refused_as_a_replay()
    {
        var signature = new WebhookSignature(Secret);
        var body = Encoding.UTF8.GetBytes(Body);

        Assert.False(signature.Verify(Id, "1614265330", Expected, body, SentAt.AddMinutes(6)));
        Assert.False(signature.Verify(Id, "1614265330", Expected, body, SentAt.AddMinutes(-6)));
        Assert.True(signature.Verify(Id, "1614265330", Expected, body, SentAt.AddMinutes(6), tolerance: TimeSpan.FromMinutes(10)));
        Assert.False(signature.Verify(Id, "not-a-number", Expected, body, SentAt));
    }

    [Fact]
    public void During_a_rotation_any_listed_v1_signature_verifies_and_garbage_beside_it_is_ignored()
    {
        var body = Encoding.UTF8.GetBytes(Body);

        Assert.True(new WebhookSignature(Secret).Verify(Id, "1614265330", $"v1,AAAA v2,zzz v1,not!base64 {Expected}", body, SentAt));
        Assert.False(new WebhookSignature(Secret).Verify(Id, "1614265330", "v1a," + Expected[3..], body, SentAt));
    }

    [Fact]
    public void A_plain_secret_is_used_as_its_utf8_bytes()
    {
        var body = Encoding.UTF8.GetBytes(Body);
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData("plain secret"u8, Encoding.UTF8.GetBytes($"{Id}.{Timestamp}.{Body}")));

        Assert.Equal(expected, new WebhookSignature("plain secret").Sign(Id, Timestamp, body));
    }

    [Fact]
    public void The_readme_shows_the_example_vector_and_the_receiver_snippet_compiled_here()
    {
        var readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));
        var section = readme[readme.IndexOf("### Verifying a webhook", StringComparison.Ordinal)..];
        var snippet = CodeBlock().Match(section).Groups[1].Value;
        var source = File.ReadAllText(Path.Combine(RepositoryRoot(), "tests", "CloudDelivery.Tests", "Events", "SinkSignatureTests.cs"));
        // The last occurrences are the markers themselves, not these strings.
        var begin = source.LastIndexOf("// README snippet begins", StringComparison.Ordinal) + "// README snippet begins".Length;
        var copy = source[begin..source.LastIndexOf("// README snippet ends", StringComparison.Ordinal)];

        Assert.Equal(Normalise(snippet), Normalise(copy));
        foreach (var value in new[] { Secret, Id, Timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture), Body, Expected })
        {
            Assert.Contains($"`{value}`", section, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(Secret)]
    [InlineData("a plain secret")]
    public void The_readme_receiver_agrees_with_the_signer_on_good_tampered_and_replayed_requests(string secret)
    {
        var body = RandomNumberGenerator.GetBytes(300);
        var signed = new WebhookSignature(secret).Sign("batch_1", Timestamp, body);
        var tampered = (byte[])body.Clone();
        tampered[17] ^= 1;

        Assert.True(IsSignedByCloudDelivery(secret, "batch_1", "1614265330", signed, body, SentAt));
        Assert.False(IsSignedByCloudDelivery(secret, "batch_1", "1614265330", signed, tampered, SentAt));
        Assert.False(IsSignedByCloudDelivery(secret, "batch_1", "1614265330", signed, body, SentAt.AddMinutes(10)));
        Assert.True(IsSignedByCloudDelivery(secret, "batch_1", "1614265330", $"v1,AAAA {signed}", body, SentAt));
    }

    // The README's snippet, verbatim but for the usings (which the test file has at its top).
    // README snippet begins
    static bool IsSignedByCloudDelivery(string secret, string id, string timestamp, string signatureHeader, byte[] body, DateTimeOffset now)
    {
        if (!long.TryParse(timestamp, out var seconds) || Math.Abs(now.ToUnixTimeSeconds() - seconds) > 300)
        {
            return false;
        }
        var key = secret.StartsWith("whsec_", StringComparison.Ordinal) ? Convert.FromBase64String(secret[6..]) : Encoding.UTF8.GetBytes(secret);
        var expected = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.").Concat(body).ToArray());
        foreach (var candidate in signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var presented = new byte[expected.Length];
            if (candidate.StartsWith("v1,", StringComparison.Ordinal)
                && Convert.TryFromBase64String(candidate[3..], presented, out var length) && length == expected.Length
                && CryptographicOperations.FixedTimeEquals(presented, expected))
            {
                return true;
            }
        }
        return false;
    }
    // README snippet ends

    /// <summary>The snippet's lines without the usings, indentation and blank lines.</summary>
    private static string Normalise(string code) => string.Join('\n', code.Split('\n')
        .Select(line => line.Trim())
        .Where(line => line.Length > 0 && !line.StartsWith("using ", StringComparison.Ordinal)));

    private static string RepositoryRoot()
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

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();
}
