using CloudDelivery.Azure.Queue;
using CsCheck;

namespace CloudDelivery.Tests.Queue;

public class DomainPartitionTests
{
    [Theory]
    [InlineData("gmail.com", "gmail.com", 0)]
    [InlineData("gmail.com~1", "gmail.com", 1)]
    [InlineData("gmail.com~63", "gmail.com", 63)]
    [InlineData("[192.0.2.1]~2", "[192.0.2.1]", 2)]
    public void A_partition_names_its_domain_and_shard(string partition, string domain, int shard)
    {
        Assert.True(DomainPartition.TryParse(partition, out var parsedDomain, out var parsedShard));
        Assert.Equal((domain, shard), (parsedDomain, parsedShard));
        Assert.Equal(partition, DomainPartition.Of(domain, shard));
    }

    [Theory]
    [InlineData("gmail.com~0")]
    [InlineData("gmail.com~01")]
    [InlineData("gmail.com~64")]
    [InlineData("gmail.com~")]
    [InlineData("gmail.com~x")]
    [InlineData("~1")]
    [InlineData("~hot")]
    public void A_suffix_that_is_not_a_shard_number_is_no_shard(string partition)
    {
        Assert.False(DomainPartition.TryParse(partition, out _, out _));
        Assert.False(OutboundQueue.IsRecipientId($"{partition}/0190d4a0c0de7000800000000000abcd.0000"));
    }

    [Fact]
    public void Recipient_ids_of_shards_are_looked_up_and_malformed_ones_are_not()
    {
        Assert.True(OutboundQueue.IsRecipientId("gmail.com~3/0190d4a0c0de7000800000000000abcd.0000"));
        Assert.False(OutboundQueue.IsRecipientId("GMAIL.com~3/0190d4a0c0de7000800000000000abcd.0000"));
        Assert.False(OutboundQueue.IsRecipientId("gmail.com~3~1/0190d4a0c0de7000800000000000abcd.0000"));
    }

    [Fact]
    public void Any_domain_and_shard_round_trip_and_a_message_keeps_its_shard_as_the_count_doubles()
    {
        var domains = Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789-."], 1, 60];
        Gen.Select(domains, Gen.Int[0, DomainPartition.MaxShards - 1], Gen.Int[0, 6], Gen.Guid).Sample((domain, shard, power, id) =>
        {
            Assert.True(DomainPartition.TryParse(DomainPartition.Of(domain, shard), out var parsedDomain, out var parsedShard));
            Assert.Equal((domain, shard), (parsedDomain, parsedShard));
            var messageId = id.ToString("N");
            var shards = 1 << power;
            var chosen = DomainPartition.ShardFor(messageId, shards);
            Assert.InRange(chosen, 0, shards - 1);
            // Under twice the shards a message stays in its shard or moves to the one K above: the low bits.
            Assert.Equal(chosen, DomainPartition.ShardFor(messageId, shards * 2) % shards);
            Assert.Contains(chosen, DomainPartition.PossibleShards(messageId));
        });
    }

    [Fact]
    public void Message_ids_spread_evenly_over_the_shards()
    {
        var counts = new int[4];
        for (var i = 0; i < 4000; i++)
        {
            counts[DomainPartition.ShardFor(Guid.CreateVersion7().ToString("N"), 4)]++;
        }
        Assert.All(counts, c => Assert.InRange(c, 800, 1200));
    }

    [Theory]
    [InlineData("gmail.com=4,outlook.com=2", "gmail.com", 4)]
    [InlineData(" GMAIL.com=8 ; outlook.com=2 ", "gmail.com", 8)]
    public void Pins_parse_into_partition_names(string text, string domain, int shards) =>
        Assert.Equal(shards, HotDomains.ParsePins(text)[domain]);

    [Theory]
    [InlineData("gmail.com=3")]
    [InlineData("gmail.com=128")]
    [InlineData("gmail.com")]
    [InlineData("=4")]
    [InlineData("not a domain=4")]
    public void A_malformed_pin_is_refused_with_the_entry_named(string text) =>
        Assert.Contains("Queue:Shards entry", Assert.Throws<ArgumentException>(() => HotDomains.ParsePins(text)).Message);
}
