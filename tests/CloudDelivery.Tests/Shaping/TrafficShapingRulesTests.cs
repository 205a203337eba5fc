using CloudDelivery.Azure.Hosting;
using CloudDelivery.Shaping;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudDelivery.Tests.Shaping;

/// <summary>
/// The rules are data: the shipped file gives the big providers one budget per MX suffix, an operator file
/// replaces or adds rules, and a bad operator file stops start-up with one line naming the key and the place.
/// </summary>
public sealed class TrafficShapingRulesTests
{
    [Theory]
    [InlineData("aspmx.l.google.com", "google")]
    [InlineData("alt4.gmail-smtp-in.l.google.com", "google")]
    [InlineData("aspmx2.googlemail.com", "google")]
    [InlineData("contoso-com.mail.protection.outlook.com", "microsoft")]
    [InlineData("outlook-com.olc.protection.outlook.com", "microsoft")]
    [InlineData("mta7.am0.yahoodns.net", "yahoo")]
    [InlineData("mx01.mail.icloud.com", "icloud")]
    [InlineData("mx00.emig.gmx.net", "gmx-webde")]
    [InlineData("MX-HA03.WEB.DE.", "gmx-webde")]
    public void Shipped_rules_give_a_providers_mx_hosts_the_providers_budget(string mxHost, string budget)
    {
        Assert.Equal(budget, TrafficShapingRules.Default.MatchMxHost(mxHost)?.Name);
    }

    [Theory]
    [InlineData("notgoogle.com")]
    [InlineData("google.com.evil.example")]
    [InlineData("mx.example.com")]
    public void A_host_that_only_looks_like_a_provider_gets_no_provider_budget(string mxHost)
    {
        Assert.Null(TrafficShapingRules.Default.MatchMxHost(mxHost));
    }

    [Fact]
    public void Shipped_defaults_limit_connections_and_leave_rates_open_for_unknown_domains()
    {
        var defaults = TrafficShapingRules.Default.DefaultLimits;

        Assert.NotNull(defaults.Connections);
        Assert.NotNull(defaults.MessagesPerConnection);
        Assert.Null(defaults.MessagesPerMinute);
        Assert.All(TrafficShapingRules.Default.Rules, rule => Assert.NotNull(rule.Limits.MessagesPerMinute));
    }

    [Fact]
    public void An_operator_rule_replaces_the_shipped_one_with_the_same_match_and_domain_rules_match_exactly_or_by_wildcard()
    {
        var rules = TrafficShapingRules.Default.WithOverrides("""
            // comments are allowed
            {
              "default": { "connections": 2 },
              "throttling": { "maxPause": "01:00:00" },
              "rules": [
                { "name": "our-google", "mxSuffixes": ["google.com"], "messagesPerMinute": 20 },
                { "name": "partner", "domains": ["partner.example", "*.partner.example"], "connections": 1 },
              ]
            }
            """);

        Assert.Equal("our-google", rules.MatchMxHost("aspmx.l.google.com")?.Name);
        Assert.Equal(20, rules.MatchMxHost("aspmx.l.google.com")!.Limits.MessagesPerMinute);
        // googlemail.com belonged to the replaced rule: the operator's rule took the budget's place entirely.
        Assert.Null(rules.MatchMxHost("aspmx2.googlemail.com"));
        Assert.Equal("microsoft", rules.MatchMxHost("x.mail.protection.outlook.com")?.Name);
        Assert.Equal("partner", rules.MatchRecipientDomain("partner.example")?.Name);
        Assert.Equal("partner", rules.MatchRecipientDomain("eu.partner.example")?.Name);
        Assert.Null(rules.MatchRecipientDomain("notpartner.example"));
        Assert.Equal(new ShapingLimits(Connections: 2), rules.DefaultLimits);
        Assert.Equal(TimeSpan.FromHours(1), rules.Throttling.MaxPause);
        Assert.Equal(TrafficShapingRules.Default.Throttling.InitialPause, rules.Throttling.InitialPause);
    }

    [Theory]
    [InlineData("{ \"rules\": [ { \"domains\": [\"a.example\"] ", "line 1")]
    [InlineData("{\n  \"rules\": [\n    { \"domains\": [\"a.example\"], \"connections\": \"many\" }\n  ]\n}", "line 3")]
    [InlineData("{ \"rulez\": [] }", "line 1")]
    [InlineData("{ \"rules\": [ { \"domains\": [\"a.example\"], \"messagesPerMinute\": 0 } ] }", "rules[0].messagesPerMinute")]
    [InlineData("{ \"rules\": [ { \"connections\": 1 } ] }", "rules[0]")]
    [InlineData("{ \"rules\": [ { \"domains\": [\"a..example\"] } ] }", "rules[0].domains[0]")]
    [InlineData("{ \"throttling\": { \"initialPause\": \"00:10:00\", \"maxPause\": \"00:01:00\" } }", "throttling.maxPause")]
    [InlineData("null", "line 1")]
    public void A_bad_rules_file_is_refused_saying_where(string json, string where)
    {
        var e = Assert.Throws<FormatException>(() => TrafficShapingRules.Parse(json));

        Assert.StartsWith(where, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_rules_file_stops_start_up_with_one_line_naming_the_key()
    {
        var path = Path.Combine(Path.GetTempPath(), $"shaping-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{ \"rules\": [ { \"domains\": [\"a.example\"], \"connections\": -3 } ] }");
        try
        {
            using var provider = Host(path);

            var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<TrafficShapingOptions>>().Value);

            var line = Assert.Single(e.Failures);
            Assert.StartsWith("CloudDelivery:Shaping:RulesFile: ", line, StringComparison.Ordinal);
            Assert.Contains("rules[0].connections", line, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_missing_rules_file_stops_start_up_naming_the_key()
    {
        using var provider = Host("/nonexistent/shaping.json");

        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<TrafficShapingOptions>>().Value);

        Assert.StartsWith("CloudDelivery:Shaping:RulesFile: ", Assert.Single(e.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public void The_operator_file_reaches_the_registered_rules()
    {
        var path = Path.Combine(Path.GetTempPath(), $"shaping-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{ \"rules\": [ { \"name\": \"partner\", \"domains\": [\"partner.example\"], \"messagesPerHour\": 100 } ] }");
        try
        {
            using var provider = Host(path);

            var rules = provider.GetRequiredService<TrafficShapingRules>();

            Assert.Equal(100, rules.MatchRecipientDomain("partner.example")?.Limits.MessagesPerHour);
            Assert.Equal("google", rules.MatchMxHost("aspmx.l.google.com")?.Name);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static ServiceProvider Host(string rulesFile)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["CloudDelivery:Shaping:RulesFile"] = rulesFile }).Build();
        var services = new ServiceCollection();
        services.AddTrafficShaping(configuration.GetSection(TrafficShapingOptions.SectionPath));
        return services.BuildServiceProvider();
    }
}
