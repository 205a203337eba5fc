using CloudDelivery.Addressing;
using CloudDelivery.Azure.Hosting;
using CloudDelivery.Tls;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Tls;

/// <summary>The operator's policy table: its format, which entry applies to a host, and its start-up check.</summary>
public class OperatorTlsPoliciesTests
{
    private static OperatorTlsPolicies Table(string text)
    {
        var (policies, problems) = OperatorTlsPolicies.ParseFile(text, "test");
        Assert.Empty(problems);
        return policies!;
    }

    private static string? LevelFor(OperatorTlsPolicies table, string recipientDomain, string mxHost, string? senderDomain = null) =>
        table.For(Domain.Parse(recipientDomain), Domain.Parse(mxHost), table.ForSender(senderDomain is null ? null : Domain.Parse(senderDomain)))?.LevelName;

    [Fact]
    public void Entries_match_a_recipient_domain_exactly_its_subdomains_with_a_dot_and_mx_hosts_by_suffix()
    {
        var table = Table("""
            # destination   level
            example.com     encrypt
            .example.net    verify     # subdomains only, as Postfix's .example.net
            mx:.outlook.com verify match=.outlook.com
            mx:mx.single.example dane-only
            """);

        Assert.Equal("encrypt", LevelFor(table, "example.com", "mx.elsewhere.example"));
        Assert.Null(LevelFor(table, "sub.example.com", "mx.elsewhere.example"));
        Assert.Equal("verify", LevelFor(table, "shop.example.net", "mx.elsewhere.example"));
        Assert.Null(LevelFor(table, "example.net", "mx.elsewhere.example"));
        Assert.Equal("verify", LevelFor(table, "customer.example", "customer-example.mail.protection.outlook.com"));
        Assert.Equal("dane-only", LevelFor(table, "customer.example", "mx.single.example"));
        Assert.Null(LevelFor(table, "customer.example", "other.single.example"));
        Assert.Equal([".outlook.com"], table.Entries[2].MatchNames);
    }

    [Fact]
    public void The_strictest_entry_wins_and_none_only_when_nothing_else_applies()
    {
        var table = Table("""
            broken.example      none
            mx:.hoster.example  encrypt
            sender:bank.example verify
            """);

        Assert.Equal("none", LevelFor(table, "broken.example", "mx.broken.example"));
        Assert.Equal("encrypt", LevelFor(table, "broken.example", "mx1.hoster.example"));
        Assert.Equal("verify", LevelFor(table, "broken.example", "mx.broken.example", "bank.example"));
        Assert.Equal("none", LevelFor(table, "broken.example", "mx.broken.example", "shop.example"));
    }

    [Fact]
    public void A_failure_names_what_the_entry_covers_in_a_senders_words()
    {
        var table = Table("example.com encrypt\nmx:.hoster.example verify\nsender:.bank.example dane-only");

        Assert.Equal("example.com", table.For(Domain.Parse("example.com"), Domain.Parse("mx.example.com"), null)!.AppliesTo);
        Assert.Equal("MX host mx1.hoster.example", table.For(Domain.Parse("a.example"), Domain.Parse("mx1.hoster.example"), null)!.AppliesTo);
        Assert.Equal("mail from bank.example", table.For(Domain.Parse("a.example"), Domain.Parse("mx.a.example"), table.ForSender(Domain.Parse("pay.bank.example")))!.AppliesTo);
    }

    [Theory]
    [InlineData("example.com verfy", "line 1: unknown level \"verfy\" (expected one of none, may, encrypt, verify, dane-only)")]
    [InlineData("# fine\nexample.com", "line 2: expected \"destination level\", e.g. \"example.com encrypt\"")]
    [InlineData("example.com encrypt match=mx.example.com", "line 1: match= only goes with verify")]
    [InlineData("example.com verify protocols=TLSv1.2", "line 1: unknown attribute \"protocols=TLSv1.2\" (only match= is known)")]
    [InlineData("mx: verify", "line 1: missing domain name")]
    [InlineData("\n\nexa..mple.com may", "line 3: \"exa..mple.com\" is not a domain name")]
    [InlineData("example.com verify match=good.example:", "line 1: match=: missing domain name")]
    public void A_bad_line_is_refused_with_its_number_and_the_problem(string text, string expected)
    {
        var (policies, problems) = OperatorTlsPolicies.ParseFile(text, "test");

        Assert.Null(policies);
        Assert.Equal(expected, Assert.Single(problems));
    }

    [Fact]
    public void Inline_entries_are_separated_by_semicolons_and_international_names_are_compared_as_a_labels()
    {
        var (policies, problems) = OperatorTlsPolicies.ParseInline("bücher.example encrypt; sender:bank.example verify ;", "inline");

        Assert.Empty(problems);
        Assert.Equal(["xn--bcher-kva.example encrypt", "sender:bank.example verify"], policies!.Entries.Select(e => e.ToString()));
        Assert.Equal("encrypt", LevelFor(policies, "xn--bcher-kva.example", "mx.example"));
    }

    [Fact]
    public void A_bad_setting_stops_start_up_with_one_line_naming_the_key_and_the_line()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "good.example encrypt\nbad.example sometimes\n");
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["CloudDelivery:TlsPolicy:File"] = file,
                ["CloudDelivery:TlsPolicy:Policies"] = "fine.example verify; sender: encrypt",
            }).Build();
            using var services = new ServiceCollection().AddOperatorTlsPolicies(configuration.GetSection(OperatorTlsPolicyOptions.SectionPath)).BuildServiceProvider();

            var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<OperatorTlsPolicies>());

            Assert.Equal(
                [$"CloudDelivery:TlsPolicy:File {file} line 2: unknown level \"sometimes\" (expected one of none, may, encrypt, verify, dane-only)", "CloudDelivery:TlsPolicy:Policies entry 2: missing domain name"],
                error.Failures);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_good_setting_registers_the_table_from_file_and_inline_entries()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "good.example encrypt\n");
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["CloudDelivery:TlsPolicy:File"] = file,
                ["CloudDelivery:TlsPolicy:Policies"] = "sender:bank.example verify",
            }).Build();
            using var services = new ServiceCollection().AddOperatorTlsPolicies(configuration.GetSection(OperatorTlsPolicyOptions.SectionPath)).BuildServiceProvider();

            var table = services.GetRequiredService<OperatorTlsPolicies>();

            Assert.Equal(["good.example encrypt", "sender:bank.example verify"], table.Entries.Select(e => e.ToString()));
            Assert.Equal($"line 1 of {file}", table.Entries[0].Origin);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
