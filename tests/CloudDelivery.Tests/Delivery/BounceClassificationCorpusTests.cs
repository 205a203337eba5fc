using System.Text.Json;
using System.Text.RegularExpressions;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Delivery;
using CloudDelivery.Dsn;
using CloudDelivery.Smtp;
using CsCheck;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// The receiver-text rules against real replies documented by the big receivers and the RFCs
/// (BounceCorpus/replies.json, each with its source), the operator's override file, and untrusted input.
/// </summary>
public class BounceClassificationCorpusTests
{
    private sealed record CorpusEntry(string Reply, string Category, string Source);

    private static readonly JsonSerializerOptions CorpusJson = new() { PropertyNameCaseInsensitive = true };

    private static List<CorpusEntry> Corpus()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Delivery", "BounceCorpus", "replies.json");
        return JsonSerializer.Deserialize<List<CorpusEntry>>(File.ReadAllText(path), CorpusJson)!;
    }

    /// <summary>"550 5.1.1 text" as a server sends it: code, then the text with its enhanced code.</summary>
    private static SmtpReply ReplyOf(string line) => SmtpReply.FromServer(int.Parse(line[..3], System.Globalization.CultureInfo.InvariantCulture), line[4..]);

    [Fact]
    public void Every_reply_of_the_corpus_gets_the_category_its_documentation_gives()
    {
        var corpus = Corpus();
        Assert.True(corpus.Count >= 60, $"the corpus has {corpus.Count} replies");
        Assert.All(corpus, entry => Assert.StartsWith("http", entry.Source, StringComparison.Ordinal));

        var wrong = corpus
            .Select(entry => (entry, actual: BounceClassification.Name(BounceClassifier.Default.Classify(ReplyOf(entry.Reply)))))
            .Where(x => x.actual != x.entry.Category)
            .Select(x => $"{x.entry.Reply} -> {x.actual}, expected {x.entry.Category}")
            .ToList();

        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void The_corpus_covers_every_category_a_failure_can_have()
    {
        var named = Corpus().Select(e => e.Category).ToHashSet(StringComparer.Ordinal);

        var missing = BounceClassification.Categories.Where(c => c != BounceCategory.None).Select(BounceClassification.Name).Where(n => !named.Contains(n)).ToList();

        Assert.Empty(missing);
    }

    [Fact]
    public void Receiver_text_is_more_specific_than_its_code()
    {
        // By RFC 3463 alone X.7.0 is a policy block and X.4.1 a routing problem; the texts say otherwise.
        var microsoftThrottle = ReplyOf("451 4.7.650 The mail server [203.0.113.5] has been temporarily rate limited due to IP reputation.");
        var edgeBlock = ReplyOf("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)");

        Assert.Equal(BounceCategory.PolicyBlock, BounceClassification.OfCodes(microsoftThrottle));
        Assert.Equal(BounceCategory.Throttled, BounceClassifier.Default.Classify(microsoftThrottle));
        Assert.Equal(BounceCategory.Network, BounceClassification.OfCodes(edgeBlock));
        Assert.Equal(BounceCategory.BadMailbox, BounceClassifier.Default.Classify(edgeBlock));
    }

    public static TheoryData<DeliveryFailureKind> EngineKinds() =>
        [.. Enum.GetValues<DeliveryFailureKind>().Where(k => !DeliveryFailure.CarriesServerReply(k))];

    [Theory]
    [MemberData(nameof(EngineKinds))]
    public void The_engines_own_failures_keep_the_category_of_their_codes(DeliveryFailureKind kind)
    {
        var codesOnly = new BounceClassifier([]);
        // Texts as the engine words them, including some that would match receiver rules.
        foreach (var text in new[] { "not attempted", "connection refused", "TLS handshake failed: remote certificate rejected", "recipient address user@example.com cannot be sent: too long", "too many connections, rate limited", "blocked using policy" })
        {
            var failure = DeliveryFailure.Of(kind, text);
            var expected = codesOnly.Classify(failure.Reply, failure.Local);
            if (failure.Local != LocalFailure.None)
            {
                Assert.Equal(expected, BounceClassifier.Default.Classify(failure.Reply, failure.Local));
            }
        }
        // Kinds without a local failure carry fixed texts of the engine's own; with them the codes decide.
        var own = DeliveryFailure.Of(kind, kind == DeliveryFailureKind.NotAttempted ? "no delivery attempted" : $"{kind}");
        Assert.Equal(codesOnly.Classify(own.Reply, own.Local), BounceClassifier.Default.Classify(own.Reply, own.Local));
    }

    [Fact]
    public void Every_shipped_rule_names_its_source_and_its_category()
    {
        Assert.NotEmpty(BounceRules.Shipped);
        Assert.All(BounceRules.Shipped, rule =>
        {
            Assert.StartsWith("http", rule.Source ?? string.Empty, StringComparison.Ordinal);
            Assert.NotEqual(BounceCategory.None, rule.Category);
        });
    }

    [Fact]
    public void Every_condition_of_a_rule_must_hold_and_an_enhanced_code_with_X_matches_either_class()
    {
        var rules = BounceRules.Parse("""{"rules": [{"category": "throttled", "code": "4xx", "enhanced": "X.7.900", "text": "slow"}]}""");
        var rule = Assert.Single(rules);

        Assert.True(rule.Matches(new SmtpReply(451, "4.7.900", "please go SLOW")));
        Assert.False(rule.Matches(new SmtpReply(551, "5.7.900", "please go slow")));
        Assert.False(rule.Matches(new SmtpReply(451, "4.7.901", "please go slow")));
        Assert.False(rule.Matches(new SmtpReply(451, "4.7.900", "please go away")));
        Assert.False(rule.Matches(new SmtpReply(451, null, "please go slow")));
    }

    [Fact]
    public void An_operators_rule_is_checked_before_the_shipped_ones()
    {
        var reply = ReplyOf("451 4.7.650 The mail server [203.0.113.5] has been temporarily rate limited due to IP reputation.");
        var classifier = BounceClassifier.WithOperatorRules(BounceRules.Parse("""
            // Treat Microsoft's reputation limit as a block: stop, look at the reputation first.
            {"rules": [{"category": "policy-block", "enhanced": "4.7.650", "source": "https://example.com/runbook"}]}
            """));

        Assert.Equal(BounceCategory.PolicyBlock, classifier.Classify(reply));
        Assert.Equal(BounceCategory.Throttled, BounceClassifier.Default.Classify(reply));
        // The shipped rules still follow the operator's.
        Assert.Equal(BounceCategory.BadMailbox, classifier.Classify(ReplyOf("550 5.4.1 Recipient address rejected: Access denied")));
    }

    [Theory]
    [InlineData("""{"rules": [{"category": "throttled", "text": "x"}, {"category": "slow", "text": "y"}]}""", "rule 2: unknown category \"slow\"")]
    [InlineData("""{"rules": [{"category": "throttled", "regex": "(unclosed"}]}""", "rule 1: \"regex\" is not a usable regular expression")]
    [InlineData("""{"rules": [{"category": "throttled", "regex": "(a)\\1"}]}""", "rule 1: \"regex\" is not a usable regular expression")]
    [InlineData("""{"rules": [{"category": "throttled"}]}""", "rule 1: a rule needs at least one of")]
    [InlineData("""{"rules": [{"category": "throttled", "text": "x", "colour": "red"}]}""", "rule 1: unknown field \"colour\"")]
    [InlineData("""{"rules": [{"category": "throttled", "code": 250}]}""", "rule 1: \"code\" must be")]
    [InlineData("""{"rules": [{"category": "throttled", "enhanced": "4.7"}]}""", "rule 1: \"enhanced\" must be")]
    [InlineData("""{"rules": [{"category": "none", "text": "x"}]}""", "rule 1: unknown category \"none\"")]
    [InlineData("""{"rules": {}}""", "expected an object with a \"rules\" array")]
    [InlineData("""{"rules": [""", "not valid JSON")]
    public void A_malformed_rules_file_is_refused_naming_the_rules_position(string json, string message)
    {
        var e = Assert.Throws<FormatException>(() => BounceRules.Parse(json));

        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    private static ServiceProvider Services(string? rulesFile)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["CloudDelivery:Bounces:RulesFile"] = rulesFile }).Build();
        return new ServiceCollection().AddBounceClassification(configuration.GetSection(BounceOptions.SectionPath)).BuildServiceProvider();
    }

    [Fact]
    public void An_invalid_rules_file_stops_the_start_naming_its_key_and_rule()
    {
        var path = Path.Combine(Path.GetTempPath(), $"bounce-rules-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"rules": [{"category": "throttled", "text": "slow"}, {"category": "throttled", "regex": "[z-a]"}]}""");
        try
        {
            using var services = Services(path);

            var e = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<BounceOptions>>().Value);

            var line = Assert.Single(e.Failures);
            Assert.StartsWith("CloudDelivery:Bounces:RulesFile: ", line, StringComparison.Ordinal);
            Assert.Contains("rule 2", line, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_missing_rules_file_stops_the_start_naming_its_key()
    {
        using var services = Services(Path.Combine(Path.GetTempPath(), $"absent-{Guid.NewGuid():N}.json"));

        var e = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<BounceOptions>>().Value);

        Assert.StartsWith("CloudDelivery:Bounces:RulesFile: cannot read", Assert.Single(e.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public void The_registered_classifier_has_the_operators_rules_and_without_a_file_the_shipped_ones()
    {
        var path = Path.Combine(Path.GetTempPath(), $"bounce-rules-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"rules": [{"category": "bad-mailbox", "code": "550", "text": "ACME-U42"}]}""");
        try
        {
            using var configured = Services(path);
            using var plain = Services(null);
            var reply = new SmtpReply(550, "5.7.1", "ACME-U42 mailbox retired");

            Assert.Equal(BounceCategory.BadMailbox, configured.GetRequiredService<BounceClassifier>().Classify(reply));
            Assert.Same(BounceClassifier.Default, plain.GetRequiredService<BounceClassifier>());
            Assert.Equal(BounceCategory.PolicyBlock, plain.GetRequiredService<BounceClassifier>().Classify(reply));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Any_reply_gets_a_category_without_an_exception()
    {
        var codes = Gen.OneOf(Gen.Int[0, 999], Gen.OneOf(new[] { 421, 450, 451, 452, 550, 552, 554 }));
        var enhanced = Gen.OneOf(
            Gen.Const((string?)null),
            Gen.Select(Gen.OneOf(new[] { "2", "4", "5", "X", "9" }), Gen.Int[0, 999], Gen.Int[0, 9999], (c, s, d) => (string?)$"{c}.{s}.{d}"),
            Gen.String.Select(s => (string?)s));
        var words = Gen.OneOf(new[] { "rate limited", "user unknown", "[TSS04]", "blocked using", "DMARC", "over quota", "TLS required", "RP-001", "\u0000", "\u00e9", " " });
        var text = Gen.OneOf(Gen.String, words.Array[0, 8].Select(w => string.Join(' ', w)));
        var localFailures = Gen.Enum<LocalFailure>();

        Gen.Select(codes, enhanced, text, localFailures).Sample((code, e, t, local) =>
        {
            var category = BounceClassifier.Default.Classify(new SmtpReply(code, e, t), local);
            Assert.True(Enum.IsDefined(category));
            return !(code is >= 200 and < 300 && local == LocalFailure.None) || category == BounceCategory.None;
        }, iter: 3000, threads: 1);
    }

    [Fact]
    public void Any_rules_text_is_parsed_or_refused_with_a_format_exception_only()
    {
        var fragments = Gen.OneOf(new[] { "{", "}", "[", "]", "\"rules\"", ":", ",", "\"category\"", "\"throttled\"", "\"regex\"", "\"(a+)+\"", "\"code\"", "451", "\"4xx\"", "\"enhanced\"", "\"X.7.1\"", "\"text\"", "null", "1e400", "// c\n" });
        var inputs = Gen.OneOf(Gen.String, fragments.Array[0, 40].Select(f => string.Concat(f)));

        inputs.Sample(json =>
        {
            try
            {
                _ = BounceRules.Parse(json);
            }
            catch (FormatException)
            {
                // The documented refusal.
            }
        }, iter: 3000, threads: 1);
    }

    [Fact]
    public void A_rule_that_would_backtrack_forever_classifies_an_adversarial_reply_with_bounded_work()
    {
        // Nested quantifiers over a long near-match are exponential for a backtracking engine. The rule is
        // compiled NonBacktracking (linear in the text) with a match timeout as the second bound.
        var rule = Assert.Single(BounceRules.Parse("""{"rules": [{"category": "throttled", "regex": "^(a+)+$"}]}"""));
        var adversarial = new string('a', 100_000) + "!";

        Assert.True(rule.Pattern!.Options.HasFlag(RegexOptions.NonBacktracking));
        Assert.Equal(BounceRules.MatchTimeout, rule.Pattern.MatchTimeout);
        Assert.True(BounceRules.MatchTimeout <= TimeSpan.FromSeconds(1));
        Assert.Equal(BounceCategory.Other, new BounceClassifier([rule]).Classify(new SmtpReply(554, null, adversarial)));
        Assert.All(BounceRules.Shipped.Where(r => r.Pattern is not null), r => Assert.True(r.Pattern!.Options.HasFlag(RegexOptions.NonBacktracking)));
        Assert.Equal(BounceCategory.Other, BounceClassifier.Default.Classify(new SmtpReply(554, null, adversarial)));
    }

    [Theory]
    [InlineData(BounceCategory.BadMailbox, false, "The address does not exist")]
    [InlineData(BounceCategory.Throttled, true, "limits how fast it accepts mail; we keep trying")]
    [InlineData(BounceCategory.Authentication, false, "SPF, DKIM or DMARC")]
    public void A_dsn_explains_each_recipients_category_in_words_and_in_an_extension_field(BounceCategory category, bool delayed, string words)
    {
        var recipient = new DsnRecipient(global::CloudDelivery.Addressing.EmailAddress.Parse("bob@example.org"), delayed, new SmtpReply(550, "5.1.1", "no such user"), "mx.example.org", DateTimeOffset.UnixEpoch, delayed ? DateTimeOffset.UnixEpoch.AddDays(5) : null, category);
        using var original = new MemoryStream("From: <alice@example.com>\r\nSubject: hi\r\n\r\nbody\r\n"u8.ToArray());

        var (dsn, _) = DsnComposer.Compose("mta.example.com", global::CloudDelivery.Addressing.EmailAddress.Parse("alice@example.com"), original, DateTimeOffset.UnixEpoch, [recipient], DateTimeOffset.UnixEpoch.AddHours(1));
        var message = MimeKit.MimeMessage.Load(new MemoryStream(dsn));
        var report = Assert.IsType<MimeKit.MultipartReport>(message.Body);
        var human = Assert.IsType<MimeKit.TextPart>(report[0]).Text;
        using var status = new MemoryStream();
        ((MimeKit.MimePart)report[1]).Content!.DecodeTo(status);

        Assert.Contains(words, human, StringComparison.Ordinal);
        Assert.Contains($"{DsnComposer.CategoryField}: {BounceClassification.Name(category)}\r\n", System.Text.Encoding.UTF8.GetString(status.ToArray()), StringComparison.Ordinal);
    }
}
