using CloudDelivery.Addressing;
using CloudDelivery.MtaSts;
using CloudDelivery.TlsRpt;
using CsCheck;

namespace CloudDelivery.Fuzz;

/// <summary>
/// One parser of untrusted bytes under generated input: how its inputs are made and what must hold for
/// each. <see cref="Check"/> throws when the parser misbehaves: an exception other than the one it
/// documents for bad input, or a result that breaks the parser's own promises.
/// </summary>
/// <param name="Name">The name the runner and the tests use ("mta-sts-policy").</param>
/// <param name="Inputs">Inputs: grammar fragments mixed with noise, so that the parser's deep paths are reached.</param>
/// <param name="Check">Parses one input and checks the outcome; true when the parser accepted it.</param>
public sealed record ParserTarget(string Name, Gen<string> Inputs, Func<string, bool> Check);

/// <summary>Thrown by a check when a parser broke a promise (as opposed to crashing on its own).</summary>
public sealed class BrokenParserPromiseException(string message) : Exception(message);

/// <summary>The parsers of untrusted bytes and their generated inputs.</summary>
public static class ParserTargets
{
    /// <summary>Every target, by name.</summary>
    public static IReadOnlyList<ParserTarget> All { get; } =
    [
        new("mta-sts-record", Inputs(
            ["v=STSv1; id=20240101T000000;", "v=STSv1;id=abc", "v=STSv1; id=1; ext=value", "v=STSv1; id=a;"],
            ["v=STSv1", "v=STSv2", ";", "; ", " ", "\t", "id=", "id=abc123", "=", "ext=value", "x-y=", "\u00e9", "\0", new string('a', 33)]), CheckMtaStsRecord),
        new("mta-sts-policy", Inputs(
            ["version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n", "version: STSv1\nmode: testing\nmx: *.example.net\nmx: mx1.example.org\nmax_age: 604800\n", "version: STSv1\nmode: none\nmax_age: 1\n"],
            ["version: STSv1", "mode: enforce", "mode: testing", "mode: none", "max_age: 31557600", "max_age: 99999999999", "max_age: -1", "mx: *.*.x", "mx: .", "mx: ", "\r\n", "\n", "\r", ":", ": ", " ", "*", ".", "xn--", "\u00e9.example", "key: value"]), CheckMtaStsPolicy),
        new("tlsrpt-record", Inputs(
            ["v=TLSRPTv1; rua=mailto:tlsrpt@example.com", "v=TLSRPTv1;rua=https://reports.example.com/v1,mailto:a@example.org", "v=TLSRPTv1; rua=mailto:x@example.com!10m; ext=1"],
            ["v=TLSRPTv1", "v=TLSRPTv2", ";", " ", "rua=", "mailto:", "https://", "http://x", ",", "%", "%zz", "!", "?", "@", "=", "ext=1"]), CheckTlsRptRecord),
        new("domain", Inputs(
            ["example.com", "mail.example.co.uk", "xn--nxasmq6b.example", "\u00e9xample.org", "a-b.c-d.example", "example.com."],
            [".", "-", "xn--", "\u00e9", "\u0301", "\u200d", "_", "*", "1", "0x", "[", "]", "\u3002", new string('a', 64)]), CheckDomain),
        new("email-address", Inputs(
            ["user@example.com", "first.last+tag@mail.example.org", "\"quoted local\"@example.com", "user@[192.0.2.1]", "user@[IPv6:2001:db8::1]", "\u00e9l\u00e8ve@\u00e9cole.example", "a@xn--nxasmq6b.example"],
            ["@", "\"", "\\", " ", ".", "..", "[", "]", "\u00e9", "<", ">", ",", ";", ":", "(", ")", "\r", "\n", "a@b"]), CheckEmailAddress),
        new("smtp-replies", Inputs(
            ["220 mx.example.com ESMTP\r\n250-mx.example.com\r\n250-PIPELINING\r\n250-LIMITS RCPTMAX=10\r\n250 SIZE 1000\r\n", "220-first\r\n220 second\r\n250 ok\r\n", "554 go away\r\n"],
            ["220 ", "220-", "250-", "250 ", "421 ", "554 ", "\r\n", "\n", "\r", "LIMITS RCPTMAX=", "RCPTMAX=0", "RCPTMAX=99999999999", "SIZE ", "STARTTLS", "8BITMIME", "SMTPUTF8", "REQUIRETLS", "-", " ", "\u00ff", new string('x', 5000)]), CheckSmtpReplies),
        new("submission-json", Inputs(
            ["{\"from\":\"s@sender.example\",\"to\":[\"r@example.com\"],\"message\":\"U3ViamVjdDogeA0KDQpoaQ0K\"}", "{\"from\":\"<>\",\"to\":[\"a@x.example\",\"b@y.example\"],\"message\":\"aGk=\",\"requireTls\":true,\"tlsRequiredNo\":false}", "{\"to\":[null],\"message\":\"\\u0041\\/\"}"],
            ["{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\u00e9", "\\ud800", "null", "true", "false", "0", "-1e999", "\"from\":", "\"to\":", "\"message\":", "\"requireTls\":", "==", "+/", "\u00ff", "\u00c3"]), CheckSubmissionJson),
        new("tags-header", Inputs(
            ["From: <s@sender.example>\r\nX-CloudDelivery-Tags: campaign=spring; tenant=t-1\r\nSubject: hi\r\n\r\nbody\r\n", "x-clouddelivery-tags : a=1;\r\n\tb=2\nTo: r@example.com\n\nX-CloudDelivery-Tags: not=stripped\n", "Subject: x\r\nX-CloudDelivery-Tags: k.1=\r\n\r\n"],
            ["X-CloudDelivery-Tags:", "x-clouddelivery-tags :", "X-CloudDelivery-Tags-Other: 1", "X-CloudDelivery-Tag", "Subject: s", "\r\n", "\n", "\r", "\r\n\r\n", " ", "\t", ";", "=", "k=v", "a_b.c-d=value with spaces", "=v", "k=", "\u00e9", "\0", new string('k', 65), ":"]), CheckTagsHeader),
        new("traffic-shaping-rules", Inputs(
            ["{}", "{\"rules\":[]}", "{\"default\":{\"connections\":3}}", "{\"rules\":[{\"name\":\"g\",\"mxSuffixes\":[\"google.com\"],\"messagesPerMinute\":5}]}", "{\"throttling\":{\"initialPause\":\"00:01:00\",\"maxPause\":\"00:10:00\"}}", "/* c */ {\"rules\":[{\"domains\":[\"*.example.com\",\"example.org\"],\"connections\":1,},]}"],
            ["{", "}", "[", "]", ",", ":", "\"", "\\", "/*", "*/", "//", "null", "true", "0", "-1", "1e9", "2147483648", "\"rules\":", "\"default\":", "\"throttling\":", "\"name\":", "\"domains\":", "\"mxSuffixes\":", "\"connections\":", "\"messagesPerHour\":", "\"recoveryPerCleanMessage\":", "\"maxPause\":", "\"99:99:99\"", "\"-00:00:01\"", "\"*.\"", "\"a..b\"", "\u00e9", "\0"]), CheckTrafficShapingRules),
    ];

    /// <summary>The target named <paramref name="name"/>.</summary>
    public static ParserTarget Get(string name) => All.Single(t => t.Name == name);

    /// <summary>
    /// Half valid inputs with a few random edits (insert a fragment or a random character, delete, repeat
    /// or swap a stretch), half fragment soup (grammar fragments, random strings, single characters of any
    /// kind, now and then one long run), so that both the accepting paths and the limits are reached.
    /// </summary>
    private static Gen<string> Inputs(string[] valid, string[] fragments)
    {
        var fragment = Gen.OneOf(fragments.Concat(valid).ToArray());
        var soupPiece = Gen.Frequency(
            (12, fragment),
            (3, Gen.String[0, 12]),
            (2, Gen.Char.Select(c => c.ToString())),
            (1, Gen.Int[100, 5000].Select(fragment, (n, f) => string.Concat(Enumerable.Repeat(f.Length == 0 ? "x" : f, Math.Max(1, n / Math.Max(1, f.Length)))))));
        var soup = soupPiece.Array[0, 24].Select(string.Concat);
        var edit = Gen.Select(Gen.Int[0, 4], Gen.Int[0, 1 << 20], Gen.Int[0, 1 << 20], Gen.Select(fragment, Gen.Char, (f, c) => (f, c)), (kind, at, length, insert) => (kind, at, length, insert.f, insert.c));
        var mutated = Gen.Select(Gen.OneOf(valid), edit.Array[0, 4], (seed, edits) =>
        {
            var text = seed;
            foreach (var (kind, at, length, insertText, insertChar) in edits)
            {
                var start = text.Length == 0 ? 0 : at % (text.Length + 1);
                var span = text.Length - start == 0 ? 0 : 1 + (length % Math.Min(8, text.Length - start));
                text = kind switch
                {
                    0 => text.Insert(start, insertText),
                    1 => text.Insert(start, insertChar.ToString()),
                    2 => text.Remove(start, span),
                    3 => text.Insert(start, text.Substring(start, span)),
                    _ => span == 0 ? text : text.Remove(start, span).Insert(start, new string(text.Substring(start, span).Reverse().ToArray())),
                };
            }
            return text;
        });
        return Gen.Frequency((1, mutated), (1, soup));
    }

    private static bool CheckMtaStsRecord(string text)
    {
        MtaStsRecord record;
        try
        {
            record = MtaStsRecord.Parse(text);
        }
        catch (MtaStsSyntaxException)
        {
            return false;
        }
        // RFC 8461 §3.1: sts-id is 1 to 32 alphanumeric characters.
        Promise(record.Id.Length is >= 1 and <= 32 && record.Id.All(char.IsAsciiLetterOrDigit), $"accepted id {record.Id}");
        Promise(MtaStsRecord.LooksLikeRecord(text), "accepted a record that does not start with v=STSv1");
        return true;
    }

    private static bool CheckMtaStsPolicy(string text)
    {
        MtaStsPolicy policy;
        try
        {
            policy = MtaStsPolicy.Parse(text);
        }
        catch (MtaStsSyntaxException)
        {
            return false;
        }
        // RFC 8461 §3.2: max_age is at most 31557600 seconds; enforce and testing name at least one mx.
        Promise(policy.MaxAge >= TimeSpan.Zero && policy.MaxAge <= TimeSpan.FromSeconds(31557600), $"max_age {policy.MaxAge}");
        Promise(policy.Mode == MtaStsMode.None || policy.Mx.Count > 0, "a policy in force without mx");
        _ = policy.Matches(Domain.Parse("mail.example.com"));
        _ = policy.MxHostPatterns;
        return true;
    }

    private static bool CheckTlsRptRecord(string text)
    {
        TlsRptRecord record;
        try
        {
            record = TlsRptRecord.Parse(text);
        }
        catch (TlsRptRecordException)
        {
            return false;
        }
        Promise(record.ReportingUris.Count > 0, "a record without rua");
        _ = record.MailtoAddresses.ToList();
        _ = record.HttpsUris.ToList();
        return true;
    }

    private static bool CheckDomain(string text)
    {
        if (!Domain.TryParse(text, out var domain, out var error))
        {
            Promise(error.Length > 0, "a refusal without a reason");
            return false;
        }
        // Both forms parse back to the same domain (A-labels and U-labels, RFC 5890).
        Promise(Domain.Parse(domain.Ascii).Equals(domain), $"{domain.Ascii} does not round-trip");
        Promise(Domain.Parse(domain.Unicode).Equals(domain), $"{domain.Unicode} does not round-trip");
        Promise(domain.Ascii.Length <= 253 && domain.Ascii.All(char.IsAscii), $"A-label form {domain.Ascii}");
        return true;
    }

    private static bool CheckEmailAddress(string text)
    {
        if (!EmailAddress.TryParse(text, out var address, out var error))
        {
            Promise(error.Length > 0, "a refusal without a reason");
            return false;
        }
        // What is accepted parses back from its SMTP form, so that it can be sent (RFC 5321 §4.1.2).
        var ascii = address.ToSmtpString(false);
        var utf8 = address.ToSmtpString(true);
        Promise(EmailAddress.Parse(utf8).Equals(address), $"{utf8} does not round-trip");
        Promise(address.IsInternational || EmailAddress.Parse(ascii).Equals(address), $"{ascii} does not round-trip");
        Promise(!utf8.Any(c => c < 0x20 || c == 0x7f), "a control character in an accepted address");
        return true;
    }

    /// <summary>Server bytes (Latin-1, as on the wire) after our EHLO, in reads of a few sizes; the reply watch of SmtpSession.</summary>
    private static bool CheckSmtpReplies(string text)
    {
        var bytes = System.Text.Encoding.Latin1.GetBytes(text);
        const int lineCap = 4096;
        using var capture = new Smtp.SmtpConversationCapture(new Smtp.SmtpBounds(TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), lineCap, 64 * 1024, TimeProvider.System));
        var ehlo = "EHLO sender.example\r\n"u8.ToArray();
        capture.LogClient(ehlo, 0, ehlo.Length);
        for (int offset = 0, read = 1; offset < bytes.Length; offset += read, read = (read * 7 % 977) + 1)
        {
            read = Math.Min(read, bytes.Length - offset);
            capture.LogServer(bytes, offset, read);
        }
        // A line over the cap is always caught (RFC 5321 §4.5.3.1.5 and our generous cap), and what is
        // learnt from EHLO is well-formed.
        var longest = text.Split('\n').Max(l => l.Length);
        Promise(longest <= lineCap || capture.Violation is not null, $"a {longest}-byte line passed");
        Promise(capture.RcptMax >= 0, "negative RCPTMAX");
        Promise(capture.EhloKeywords.All(k => k.Length > 0 && string.Equals(k, k.ToUpperInvariant(), StringComparison.Ordinal)), "an empty or lower-case EHLO keyword");
        return capture.Violation is null && capture.EhloKeywords.Count > 0;
    }

    /// <summary>The JSON form of HTTP submission; the string stands for bytes (Latin-1 maps each char to one byte).</summary>
    private static bool CheckSubmissionJson(string text)
    {
        var bytes = System.Text.Encoding.Latin1.GetBytes(text);
        try
        {
            var request = Azure.Submission.SubmissionEndpoint.ParseJson(bytes, bytes.Length);
            Promise(request.Recipients.Count > 0 && request.Recipients.All(r => r is not null), "a request without recipients, or with a null one");
            return true;
        }
        catch (Azure.Submission.SubmissionEndpoint.BadRequestException e)
        {
            // Every refusal of the JSON form is a client mistake: 4xx, never 5xx.
            Promise(e.Status is >= 400 and < 500, $"refused with {e.Status}");
            return false;
        }
    }

    /// <summary>
    /// The submission stream's stripping of X-CloudDelivery-Tags (the string stands for bytes, Latin-1):
    /// read in uneven pieces, it refuses only with invalid-tags, and what it passes on is exactly the
    /// normalised message without the tag fields of its header section, folded lines included.
    /// </summary>
    /// <summary>A rules file is accepted or refused with a FormatException saying where (line and position, or the field).</summary>
    private static bool CheckTrafficShapingRules(string text)
    {
        Shaping.TrafficShapingRules rules;
        try
        {
            rules = Shaping.TrafficShapingRules.Parse(text);
        }
        catch (FormatException e)
        {
            Promise(System.Text.RegularExpressions.Regex.IsMatch(e.Message, @"^(line \d+, position \d+|the file|default|throttling|rules\[\d+\])"), $"refusal that says not where: {Escape(e.Message)}");
            return false;
        }
        Promise(rules.Rules.Select(r => r.Name).Distinct().Count() == rules.Rules.Count, "two rules with one name");
        Promise(rules.Throttling.MaxPause >= rules.Throttling.InitialPause, "a pause cap below the first pause");
        return true;
    }

    private static bool CheckTagsHeader(string text)
    {
        var bytes = System.Text.Encoding.Latin1.GetBytes(text);
        using var stream = new Azure.Submission.SubmissionStream(new UnevenReads(bytes), 1 << 24);
        var output = new MemoryStream();
        try
        {
            stream.CopyTo(output);
        }
        catch (Azure.Queue.SubmissionException e)
        {
            Promise(e.Error == Azure.Queue.SubmissionError.InvalidTags, $"refused with {e.Error}");
            return false;
        }
        var expected = StripTagFields(text);
        var actual = System.Text.Encoding.Latin1.GetString(output.ToArray());
        Promise(actual == expected, $"passed on {Escape(actual)} instead of {Escape(expected)}");
        Promise(stream.StoredLength == output.Length, "StoredLength differs from what was passed on");
        Promise(stream.Tags is null or { Count: > 0 and <= Azure.Submission.MessageTags.MaxTags }, "an empty or oversized tag map");
        return true;
    }

    /// <summary>The reference: normalise line endings, drop the header section's tag fields and their continuation lines, end with CRLF.</summary>
    private static string StripTagFields(string text)
    {
        var lines = System.Text.RegularExpressions.Regex.Replace(text, "(?<!\r)\n", "\r\n").Split("\r\n");
        var kept = new List<string>();
        var inHeaders = true;
        var inTagField = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var last = i == lines.Length - 1;
            if (inHeaders && !last && line.Trim('\r').Length == 0)
            {
                inHeaders = false;
            }
            else if (inHeaders && line.Length > 0 && line[0] is ' ' or '\t')
            {
                if (inTagField)
                {
                    continue;
                }
            }
            else if (inHeaders)
            {
                inTagField = System.Text.RegularExpressions.Regex.IsMatch(line, "^(?i:x-clouddelivery-tags)[ \t]{0,16}:");
                if (inTagField)
                {
                    continue;
                }
            }
            kept.Add(last ? line : line + "\r\n");
        }
        var joined = string.Concat(kept);
        return joined.EndsWith("\r\n", StringComparison.Ordinal) ? joined : joined + "\r\n";
    }

    private static string Escape(string text) => text.Length > 200 ? text[..200].ReplaceLineEndings("|") + "…" : text.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>Returns its bytes in pieces of changing size, so a field name or a CRLF falls across reads.</summary>
    private sealed class UnevenReads(byte[] bytes) : Stream
    {
        private int position;
        private int next = 1;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => bytes.Length;

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, next), bytes.Length - position);
            bytes.AsSpan(position, n).CopyTo(buffer.AsSpan(offset));
            position += n;
            next = (next * 5 % 31) + 1;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static void Promise(bool holds, string what)
    {
        if (!holds)
        {
            throw new BrokenParserPromiseException(what);
        }
    }
}
