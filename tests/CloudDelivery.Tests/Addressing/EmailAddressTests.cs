using CloudDelivery.Addressing;
using CsCheck;
using MimeKit;

namespace CloudDelivery.Tests.Addressing;

/// <summary>
/// The one address grammar (RFC 5321 §4.1.2 Mailbox, RFC 6531 for UTF-8): what it accepts can be sent, what it
/// refuses is refused with a reason, and no input makes it throw anything else.
/// </summary>
public class EmailAddressTests
{
    [Theory]
    [InlineData("user@example.com")]
    [InlineData("first.last+tag@sub.example.com")]
    [InlineData("!#$%&'*+-/=?^_`{|}~@example.com")]
    [InlineData("\"a b\"@example.com")]
    [InlineData("\"a@b\"@example.com")]
    [InlineData("\"quoted\\\"pair\"@example.com")]
    [InlineData("user@[192.0.2.1]")]
    [InlineData("user@[IPv6:2001:db8::1]")]
    [InlineData("用户@例子.广告")]
    [InlineData("jörg@bücher.example")]
    [InlineData("user@xn--bcher-kva.example")]
    public void Mailboxes_smtp_can_carry_are_accepted_and_round_trip(string text)
    {
        Assert.True(EmailAddress.TryParse(text, out var address, out var error), error);
        AssertRoundTrips(address);
    }

    [Theory]
    [InlineData("a@b@example.com", "more than one @")]
    [InlineData("", "empty")]
    [InlineData("@example.com", "empty local part")]
    [InlineData("user@", "empty")]
    [InlineData("user", "not local-part@domain")]
    [InlineData(".user@example.com", "empty atom")]
    [InlineData("user.@example.com", "ends with a dot")]
    [InlineData("us..er@example.com", "empty atom")]
    [InlineData("us er@example.com", "needs quoting")]
    [InlineData("us\"er@example.com", "needs quoting")]
    [InlineData("\"unterminated@example.com", "unterminated")]
    [InlineData("\"bad\\\u0001\"@example.com", "quoted pair")]
    [InlineData("user@example.com.", "trailing dot")]
    [InlineData("user@exa mple.com", "invalid domain")]
    [InlineData("user@-example.com", "invalid domain")]
    [InlineData("user@[1]", "invalid address literal")]
    [InlineData("user@[0x7f.0.0.1]", "invalid address literal")]
    [InlineData("user@[IPv6:::1%eth0]", "invalid address literal")]
    [InlineData("user@[IPv6:192.0.2.1]", "invalid address literal")]
    [InlineData("user@[tag:general]", "invalid address literal")]
    [InlineData("us\u200ber@example.com", "U+200B")]
    [InlineData("us\u0000er@example.com", "U+0000")]
    [InlineData("user\r\nRCPT TO:<x@y>@example.com", "U+000D")]
    public void Addresses_smtp_cannot_carry_are_refused_with_a_reason(string text, string reason)
    {
        Assert.False(EmailAddress.TryParse(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => EmailAddress.Parse(text));
    }

    [Fact]
    public void Lengths_follow_rfc_5321_section_4_5_3_1()
    {
        Assert.True(EmailAddress.TryParse(new string('a', 64) + "@example.com", out _, out _));
        Assert.False(EmailAddress.TryParse(new string('a', 65) + "@example.com", out _, out var local));
        Assert.Contains("64 octets", local, StringComparison.Ordinal);
        // 64 two-octet characters are 128 octets.
        Assert.False(EmailAddress.TryParse(new string('é', 33) + "@example.com", out _, out _));
        var longDomain = string.Join('.', Enumerable.Repeat(new string('d', 62), 4)) + ".com";
        Assert.False(EmailAddress.TryParse("user@" + longDomain, out _, out var whole));
        Assert.Contains("254 octets", whole, StringComparison.Ordinal);
    }

    [Fact]
    public void A_lone_surrogate_is_not_an_address()
    {
        // Built at run time: a lone surrogate in attribute data becomes U+FFFD.
        Assert.False(EmailAddress.TryParse(new string('\ud800', 1) + "@example.com", out _, out var error));
        Assert.Contains("not valid Unicode", error, StringComparison.Ordinal);
    }

    [Fact]
    public void An_address_taken_unchecked_from_a_stored_record_is_not_encodable_but_reportable()
    {
        var stored = EmailAddress.Unchecked("a@b@victim.example", NextHop.Parse("victim.example"));

        Assert.False(stored.IsEncodable(out var reason));
        Assert.Contains("more than one @", reason, StringComparison.Ordinal);
        Assert.Equal("a@b@victim.example", stored.ToString());
        Assert.True(EmailAddress.Unchecked("ok@victim.example", NextHop.Parse("victim.example")).IsEncodable(out _));
    }

    /// <summary>Characters that matter to the grammar, and some that merely look like they might.</summary>
    private const string Interesting = "aZ09.@\"\\ ()<>[]:;,!#$%&'*+-/=?^_`{|}~\r\n\t\0\u007f\u0080\u00a0éü用\u200b\u2028\ufeff\ud83d\ude00\ud800\udc00xn--I";

    private static readonly Gen<string> AnyString = Gen.OneOf(
        Gen.String,
        Gen.Char[Interesting].Array[0, 80].Select(c => new string(c)));

    private static readonly Gen<string> Atom = Gen.Char["abcxyzABC0189!#$%&'*+-/=?^_`{|}~éü用"].Array[1, 12].Select(c => new string(c));

    private static readonly Gen<string> Label = Gen.Char["abcdefxyz0189-"].Array[1, 20].Select(c => "l" + new string(c) + "z");

    /// <summary>Mostly valid mailboxes: dot-strings, quoted strings and literals, in every combination.</summary>
    private static readonly Gen<string> Mailbox = Gen.Select(
        Gen.OneOf(
            Atom.Array[1, 4].Select(a => string.Join('.', a)),
            Gen.Char["abc @.()<>[]:;,\"\\é"].Array[0, 12].Select(c => "\"" + string.Concat(c.Select(x => x is '"' or '\\' ? "\\" + x : x.ToString())) + "\"")),
        Gen.OneOf(
            Label.Array[1, 4].Select(l => string.Join('.', l)),
            Gen.Const("bücher.example"),
            Gen.Byte.Array[4].Select(b => $"[{string.Join('.', b)}]"),
            Gen.Const("[IPv6:2001:db8::1]")),
        (local, domain) => local + "@" + domain);

    /// <summary>A mostly valid mailbox with one interesting character inserted, replaced or removed somewhere.</summary>
    private static readonly Gen<string> Mutated = Gen.Select(Mailbox, Gen.Int[0, 300], Gen.Char[Interesting], Gen.Int[0, 2], (text, at, c, kind) =>
    {
        var i = at % (text.Length + 1);
        return kind switch
        {
            0 => text.Insert(i, c.ToString()),
            1 when i < text.Length => text.Remove(i, 1).Insert(i, c.ToString()),
            _ when i < text.Length => text.Remove(i, 1),
            _ => text,
        };
    });

    /// <summary>What the generated-input tests feed the parser (also the long run in Fuzz/).</summary>
    internal static readonly Gen<string> Inputs = Gen.OneOf(AnyString, Mailbox, Mutated);

    [Fact]
    public void For_any_string_the_parser_answers_without_throwing_and_what_it_accepts_round_trips()
    {
        Inputs.Sample(text =>
        {
            if (EmailAddress.TryParse(text, out var address, out var error))
            {
                AssertRoundTrips(address);
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
                Assert.Throws<FormatException>(() => EmailAddress.Parse(text));
            }
        }, iter: 20_000);
    }

    [Fact]
    public void Generated_mailboxes_are_mostly_accepted()
    {
        // Guards the generator above: if it stopped producing valid addresses, the round trip would test nothing.
        var accepted = 0;
        Mailbox.Sample(text =>
        {
            if (EmailAddress.TryParse(text, out _, out _))
            {
                Interlocked.Increment(ref accepted);
            }
        }, iter: 1000, threads: 1);
        Assert.InRange(accepted, 500, 1000);
    }

    /// <summary>
    /// What MailKit sends (MimeKit's MailboxAddress, with and without SMTPUTF8) parses back to the same
    /// mailbox, and carries nothing that would break a command line.
    /// </summary>
    internal static void AssertRoundTrips(EmailAddress address)
    {
        Assert.True(address.IsEncodable(out var reason), reason);
        Assert.Equal(address, EmailAddress.Parse(address.ToString()));
        foreach (var smtpUtf8 in new[] { true, false })
        {
            var text = address.ToSmtpString(smtpUtf8);
            var mailbox = new MailboxAddress(string.Empty, text);
            var wire = mailbox.GetAddress(idnEncode: !smtpUtf8);
            Assert.DoesNotContain('\r', wire);
            Assert.DoesNotContain('\n', wire);
            var again = EmailAddress.Parse(wire);
            Assert.Equal(address.Domain, again.Domain);
            Assert.Equal(address.LocalPart, again.LocalPart);
        }
    }
}
