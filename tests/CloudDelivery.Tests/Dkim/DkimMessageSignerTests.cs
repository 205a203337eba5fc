using System.Text;
using CloudDelivery.Dkim;

namespace CloudDelivery.Tests.Dkim;

public class DkimMessageSignerTests
{
    private const string Plain =
        "From: Sender <sender@signed.example>\r\n" +
        "To: Receiver <r@dest.example>\r\n" +
        "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n" +
        "Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n" +
        "Message-ID: <1@signed.example>\r\n" +
        "X-Not-Signed: anything\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n" +
        "\r\n" +
        "Hello, Grüße.  Trailing space \r\n" +
        "\r\n" +
        ".leading dot\r\n";

    private const string Multipart =
        "From: sender@signed.example\r\n" +
        "To: r@dest.example\r\n" +
        "Subject: two parts\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: multipart/alternative;\r\n" +
        "\tboundary=\"b1\"\r\n" +
        "List-Unsubscribe: <https://signed.example/u/1>\r\n" +
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
        "\r\n" +
        "preamble\r\n" +
        "--b1\r\n" +
        "Content-Type: text/plain\r\n" +
        "\r\n" +
        "text\r\n" +
        "--b1\r\n" +
        "Content-Type: text/html\r\n" +
        "\r\n" +
        "<p>html</p>\r\n" +
        "--b1--\r\n";

    [Fact]
    public async Task Rsa_signature_verifies_with_relaxed_canonicalisation_and_from_oversigned()
    {
        var key = DkimTestKey.Rsa("signed.example");
        var original = Encoding.UTF8.GetBytes(Plain);

        var signed = Signed(new DkimMessageSigner([key.ToKey()]), original);

        Assert.True(await DkimTestKey.VerifyAsync(signed, key));
        var tags = DkimTestKey.Tags(signed);
        Assert.Equal("rsa-sha256", tags["a"]);
        Assert.Equal("signed.example", tags["d"]);
        Assert.Equal("rsa1", tags["s"]);
        Assert.Equal("relaxed/relaxed", tags["c"]);
        // From once more than it occurs (RFC 6376 §8.15); absent fields are not listed; unlisted ones not signed.
        Assert.Equal("from:from:to:subject:date:message-id:mime-version:content-type:content-transfer-encoding", tags["h"]);
    }

    [Fact]
    public void Signature_time_comes_from_the_configured_clock()
    {
        // t= (RFC 6376 §3.5) follows the service's TimeProvider like everything else that reads the time.
        var key = DkimTestKey.Rsa("signed.example");
        var at = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);

        var signed = Signed(new DkimMessageSigner([key.ToKey()], time: new MtaSts.ManualTimeProvider(at)), Encoding.UTF8.GetBytes(Plain));

        Assert.Equal(at.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), DkimTestKey.Tags(signed)["t"]);
    }

    [Fact]
    public async Task Ed25519_signature_verifies()
    {
        var key = DkimTestKey.Ed25519("signed.example");

        var signed = Signed(new DkimMessageSigner([key.ToKey()]), Encoding.UTF8.GetBytes(Multipart));

        Assert.True(await DkimTestKey.VerifyAsync(signed, key));
        Assert.Equal("ed25519-sha256", DkimTestKey.Tags(signed)["a"]);
        Assert.Equal("from:from:to:subject:mime-version:content-type:list-unsubscribe:list-unsubscribe-post", DkimTestKey.Tags(signed)["h"]);
    }

    [Fact]
    public async Task Signature_is_a_crlf_header_line_in_front_of_the_unchanged_original()
    {
        var key = DkimTestKey.Rsa("signed.example");
        var original = Encoding.UTF8.GetBytes(Multipart);

        var header = new DkimMessageSigner([key.ToKey()]).Sign(original);

        Assert.NotNull(header);
        var text = Encoding.ASCII.GetString(header);
        Assert.StartsWith("DKIM-Signature:", text, StringComparison.Ordinal);
        Assert.EndsWith("\r\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\r\n\r\n", text, StringComparison.Ordinal);
        Assert.Equal(text.Count(c => c == '\n'), text.Split("\r\n").Length - 1);
        // Every line after the first is a continuation (RFC 5322 §2.2.3 folding).
        Assert.All(text.Split("\r\n")[1..^1], line => Assert.True(line.StartsWith(' ') || line.StartsWith('\t')));
        Assert.True(await DkimTestKey.VerifyAsync([.. header, .. original], key));
    }

    [Theory]
    [InlineData("Hello, Grüße.", "Hello, Grüsse.")]
    [InlineData(".leading dot", ".leading dos")]
    [InlineData("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fa?=")]
    [InlineData("Date: Tue, 01 Dec 2026 12:00:00", "Date: Tue, 01 Dec 2026 12:00:01")]
    public async Task Tampered_body_or_signed_header_fails_verification(string before, string after)
    {
        var key = DkimTestKey.Rsa("signed.example");
        var signed = Signed(new DkimMessageSigner([key.ToKey()]), Encoding.UTF8.GetBytes(Plain));
        Assert.True(await DkimTestKey.VerifyAsync(signed, key));

        var tampered = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(signed).Replace(before, after, StringComparison.Ordinal));

        Assert.NotEqual(signed, tampered);
        Assert.False(await DkimTestKey.VerifyAsync(tampered, key));
    }

    [Fact]
    public async Task Single_flipped_body_byte_fails_and_unsigned_header_change_does_not()
    {
        var key = DkimTestKey.Ed25519("signed.example");
        var signed = Signed(new DkimMessageSigner([key.ToKey()]), Encoding.UTF8.GetBytes(Plain));

        var flipped = (byte[])signed.Clone();
        flipped[^5] ^= 0x01;
        Assert.False(await DkimTestKey.VerifyAsync(flipped, key));

        var unsignedChanged = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(signed).Replace("X-Not-Signed: anything", "X-Not-Signed: changed", StringComparison.Ordinal));
        Assert.True(await DkimTestKey.VerifyAsync(unsignedChanged, key));
    }

    [Fact]
    public async Task A_second_from_added_above_or_below_breaks_the_signature()
    {
        var key = DkimTestKey.Rsa("signed.example");
        var signed = Encoding.UTF8.GetString(Signed(new DkimMessageSigner([key.ToKey()]), Encoding.UTF8.GetBytes(Plain)));
        var bodyStart = signed.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 2;
        var fromStart = signed.IndexOf("From: Sender", StringComparison.Ordinal);

        var above = signed.Insert(fromStart, "From: Attacker <ceo@signed.example>\r\n");
        var below = signed.Insert(bodyStart, "From: Attacker <ceo@signed.example>\r\n");

        Assert.False(await DkimTestKey.VerifyAsync(Encoding.UTF8.GetBytes(above), key));
        Assert.False(await DkimTestKey.VerifyAsync(Encoding.UTF8.GetBytes(below), key));
    }

    [Theory]
    [InlineData("From: someone@other.example\r\n")]
    [InlineData("From: someone@sub.signed.example\r\n")]
    [InlineData("Sender: someone@signed.example\r\nFrom: someone@other.example\r\n")]
    [InlineData("From: a@signed.example\r\nFrom: b@signed.example\r\n")]
    [InlineData("From: a@signed.example, b@other.example\r\n")]
    [InlineData("To: r@dest.example\r\n")]
    public void Message_whose_from_domain_has_no_key_is_left_unsigned(string headers)
    {
        var signer = new DkimMessageSigner([DkimTestKey.Rsa("signed.example").ToKey()]);
        var message = Encoding.UTF8.GetBytes(headers + "Subject: x\r\n\r\nbody\r\n");

        Assert.Null(signer.Sign(message));
        Assert.Null(signer.KeyFor(message));
    }

    [Theory]
    [InlineData("\r\nFrom: sender@signed.example\r\n\r\nno header section\r\n", false)]
    [InlineData("not a header line\r\nFrom: sender@signed.example\r\n\r\nbody\r\n", false)]
    [InlineData(" From: sender@signed.example\r\n\r\nbody\r\n", false)]
    [InlineData("From: <@>\r\n\r\nbody\r\n", false)]
    [InlineData("From: sender@signed.example\r\n", true)]
    public void Malformed_messages_are_left_unsigned_without_failing(string message, bool expectSignature)
    {
        var signer = new DkimMessageSigner([DkimTestKey.Rsa("signed.example").ToKey()]);

        var header = signer.Sign(Encoding.ASCII.GetBytes(message));

        Assert.Equal(expectSignature, header is not null);
        Assert.Equal(expectSignature, signer.KeyFor(Encoding.ASCII.GetBytes(message)) is not null);
    }

    [Theory]
    [InlineData("From: Sender <Someone@SIGNED.Example>\r\n", "signed.example")]
    [InlineData("From: a@xn--bcher-kva.example\r\n", "xn--bcher-kva.example")]
    [InlineData("From: a@bücher.example\r\n", "xn--bcher-kva.example")]
    [InlineData("From: a@XN--BCHER-KVA.example\r\n", "bücher.example")]
    public async Task Key_is_chosen_by_from_domain_case_insensitively_as_a_labels(string from, string keyDomain)
    {
        var other = DkimTestKey.Ed25519("other.example");
        var key = DkimTestKey.Rsa(keyDomain);
        var signer = new DkimMessageSigner([other.ToKey(), key.ToKey()]);
        var message = Encoding.UTF8.GetBytes(from + "Subject: x\r\n\r\nbody\r\n");

        var signed = Signed(signer, message);

        var expected = key.ToKey().Domain.Ascii;
        Assert.Equal(expected, DkimTestKey.Tags(signed)["d"]);
        Assert.Equal(expected, signer.KeyFor(message)!.Domain.Ascii);
        Assert.True(await DkimTestKey.VerifyAsync(signed, key with { Domain = expected }));
    }

    [Fact]
    public async Task Stream_and_memory_signing_agree_and_a_headers_only_message_is_signed()
    {
        var key = DkimTestKey.Rsa("signed.example");
        var signer = new DkimMessageSigner([key.ToKey()]);
        var headersOnly = Encoding.ASCII.GetBytes("From: sender@signed.example\r\nSubject: no body\r\n");

        var fromStream = signer.Sign(new MemoryStream(Encoding.UTF8.GetBytes(Multipart)))!;
        var signedHeadersOnly = Signed(signer, headersOnly);

        Assert.Equal(DkimTestKey.Tags([.. signer.Sign(Encoding.UTF8.GetBytes(Multipart))!])["bh"], DkimTestKey.Tags([.. fromStream, .. Encoding.UTF8.GetBytes(Multipart)])["bh"]);
        Assert.True(await DkimTestKey.VerifyAsync([.. fromStream, .. Encoding.UTF8.GetBytes(Multipart)], key));
        Assert.True(await DkimTestKey.VerifyAsync(signedHeadersOnly, key));
    }

    [Fact]
    public async Task Signing_a_large_file_takes_memory_independent_of_its_size()
    {
        var key = DkimTestKey.Ed25519("signed.example");
        var signer = new DkimMessageSigner([key.ToKey()]);
        var path = Path.GetTempFileName();
        try
        {
            await using (var file = File.Create(path))
            {
                await file.WriteAsync(Encoding.ASCII.GetBytes("From: sender@signed.example\r\nSubject: big\r\n\r\n"));
                var line = Encoding.ASCII.GetBytes(new string('x', 998) + "\r\n");
                for (var i = 0; i < 20_000; i++)
                {
                    await file.WriteAsync(line);
                }
            }
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
            signer.Sign(stream); // warm-up: MimeKit's and BouncyCastle's one-time initialisation

            var before = GC.GetAllocatedBytesForCurrentThread();
            var header = signer.Sign(stream);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            Assert.NotNull(header);
            Assert.True(allocated < 2_000_000, $"signing a {stream.Length} byte file allocated {allocated} bytes");
            Assert.True(await DkimTestKey.VerifyAsync([.. header, .. await File.ReadAllBytesAsync(path)], key));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Configured_header_list_replaces_the_default()
    {
        var key = DkimTestKey.Rsa("signed.example");
        var signer = new DkimMessageSigner([key.ToKey()], ["from", "Subject", "X-Not-Signed"]);

        var signed = Signed(signer, Encoding.UTF8.GetBytes(Plain));

        Assert.Equal("from:from:subject:x-not-signed", DkimTestKey.Tags(signed)["h"]);
        Assert.True(await DkimTestKey.VerifyAsync(signed, key));
        var changed = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(signed).Replace("X-Not-Signed: anything", "X-Not-Signed: changed", StringComparison.Ordinal));
        Assert.False(await DkimTestKey.VerifyAsync(changed, key));
    }

    [Fact]
    public void Bad_keys_and_header_lists_are_refused()
    {
        var rsa = DkimTestKey.Rsa("signed.example");
        var ed = DkimTestKey.Ed25519("signed.example");

        Assert.Contains("does not suit ed25519-sha256", Assert.Throws<FormatException>(() => DkimKey.FromPem("signed.example", "s", DkimAlgorithm.Ed25519Sha256, rsa.PrivateKeyPem)).Message, StringComparison.Ordinal);
        Assert.Contains("does not suit rsa-sha256", Assert.Throws<FormatException>(() => DkimKey.FromPem("signed.example", "s", DkimAlgorithm.RsaSha256, ed.PrivateKeyPem)).Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => DkimKey.FromPem("signed.example", "s", DkimAlgorithm.RsaSha256, "not a pem"));
        Assert.Throws<FormatException>(() => DkimKey.FromPem("signed.example", "s", DkimAlgorithm.RsaSha256, rsa.PrivateKeyPem[..200] + "\n-----END PRIVATE KEY-----\n"));
        Assert.Throws<FormatException>(() => DkimKey.FromPem("signed.example", "bad selector", DkimAlgorithm.RsaSha256, rsa.PrivateKeyPem));
        Assert.Throws<FormatException>(() => DkimKey.FromPem("not a domain!", "s", DkimAlgorithm.RsaSha256, rsa.PrivateKeyPem));
        Assert.False(DkimKey.TryParseAlgorithm("rsa-sha1", out _));
        Assert.Throws<ArgumentException>(() => new DkimMessageSigner([rsa.ToKey()], ["To", "Subject"]));
        Assert.Throws<ArgumentException>(() => new DkimMessageSigner([rsa.ToKey()], ["From", "Received"]));
        Assert.Throws<ArgumentException>(() => new DkimMessageSigner([rsa.ToKey(), ed.ToKey()]));
    }

    private static byte[] Signed(DkimMessageSigner signer, byte[] message)
    {
        var header = signer.Sign(message);
        Assert.NotNull(header);
        return [.. header, .. message];
    }
}
