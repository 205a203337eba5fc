using CloudDelivery.Addressing;
using CloudDelivery.MtaSts;

namespace CloudDelivery.Tests.MtaSts;

public class MtaStsPolicyTests
{
    [Theory]
    [InlineData("v=STSv1; id=20240101T000000;", "20240101T000000")]
    [InlineData("v=STSv1;id=abc", "abc")]
    [InlineData("v=STSv1; id=abc; ext=value", "abc")]
    public void Valid_records_give_their_id(string txt, string id) => Assert.Equal(id, MtaStsRecord.Parse(txt).Id);

    [Theory]
    [InlineData("v=STSv1; id=")]
    [InlineData("v=STSv1; id=has-dash")]
    [InlineData("v=STSv1; id=123456789012345678901234567890123")]
    [InlineData("v=STSv1")]
    [InlineData("v=STSv1; novalue")]
    public void Invalid_records_are_rejected(string txt) => Assert.Throws<MtaStsSyntaxException>(() => MtaStsRecord.Parse(txt));

    [Fact]
    public void Other_txt_records_are_not_mta_sts_records()
    {
        Assert.False(MtaStsRecord.LooksLikeRecord("v=spf1 -all"));
        Assert.False(MtaStsRecord.LooksLikeRecord("v=STSv10; id=1"));
        Assert.True(MtaStsRecord.LooksLikeRecord("v=STSv1; id=1"));
    }

    [Theory]
    [InlineData("version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n")]
    [InlineData("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400")]
    [InlineData("mode: enforce\nversion: STSv1\nmax_age: 86400\nmx: *.example.com\nmx: mx.example.com\nextension: whatever\n")]
    public void Valid_policies_parse(string text)
    {
        var policy = MtaStsPolicy.Parse(text);
        Assert.Equal(MtaStsMode.Enforce, policy.Mode);
        Assert.Equal(TimeSpan.FromDays(1), policy.MaxAge);
        Assert.True(policy.Matches(Domain.Parse("mx.example.com")));
    }

    [Fact]
    public void Mode_none_needs_no_mx() => Assert.Equal(MtaStsMode.None, MtaStsPolicy.Parse("version: STSv1\nmode: none\nmax_age: 0\n").Mode);

    [Theory]
    [InlineData("mode: enforce\nmx: a.example\nmax_age: 1\n", "missing version")]
    [InlineData("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "unsupported version")]
    [InlineData("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "unknown mode")]
    [InlineData("version: STSv1\nmode: enforce\nmax_age: 1\n", "missing mx")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example\n", "missing max_age")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "invalid max_age")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "invalid max_age")]
    [InlineData("version: STSv1\nmode: enforce\nmx: mx.*.example\nmax_age: 1\n", "invalid mx pattern")]
    [InlineData("version: STSv1\nmode: enforce\nmx: **.example\nmax_age: 1\n", "invalid mx pattern")]
    [InlineData("<html>not a policy</html>", "expected")]
    public void Invalid_policies_say_why(string text, string reason)
    {
        var error = Assert.Throws<MtaStsSyntaxException>(() => MtaStsPolicy.Parse(text));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mx.example.com", "mx.example.com", true)]
    [InlineData("mx.example.com", "MX.Example.COM", true)]
    [InlineData("*.example.com", "mx1.example.com", true)]
    [InlineData("*.example.com", "example.com", false)]
    [InlineData("*.example.com", "a.b.example.com", false)]
    [InlineData("mx.example.com", "mx.example.com.evil.test", false)]
    [InlineData("*.xn--bcher-kva.example", "mx.bücher.example", true)]
    public void Mx_patterns_match_per_rfc_8461_section_4_1(string pattern, string host, bool matches)
    {
        var policy = MtaStsPolicy.Parse($"version: STSv1\nmode: enforce\nmx: {pattern}\nmax_age: 60\n");
        Assert.Equal(matches, policy.Matches(Domain.Parse(host)));
    }
}
