using CloudDelivery.Addressing;

namespace CloudDelivery.Tests;

public class AddressingTests
{
    [Fact]
    public void Idn_domain_has_ascii_and_unicode_forms()
    {
        var domain = Domain.Parse("Bücher.Example.");
        Assert.Equal("xn--bcher-kva.example", domain.Ascii);
        Assert.Equal("bücher.example", domain.Unicode);
    }

    [Theory]
    [InlineData("user@example.com\r\nRCPT TO:<x@y>")]
    [InlineData("no-at-sign")]
    [InlineData("@example.com")]
    [InlineData("a b@example.com")]
    public void Address_with_injection_or_bad_syntax_is_rejected(string text) =>
        Assert.False(EmailAddress.TryParse(text, out _, out _));

    [Fact]
    public void Address_literal_is_a_next_hop_without_dns()
    {
        var address = EmailAddress.Parse("postmaster@[127.0.0.1]");
        Assert.Null(address.Domain.Name);
        Assert.Equal("127.0.0.1", address.Domain.Address!.ToString());
    }
}
