using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.WakeUps;
using CloudDelivery.Dkim;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Dkim;

/// <summary>
/// Signing at submission end to end: OutboundQueue on Azurite with a DKIM signer, delivery through the
/// queue's DomainDeliveryHandler to a loopback MX, and the received bytes verified as a receiver would.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class DkimQueueTests(AzuriteFixture azurite)
{
    private const string Hostname = "mta.loopback.test";

    [Theory]
    [InlineData("rsa-sha256", 0)] // inline in the table
    [InlineData("ed25519-sha256", 0)]
    [InlineData("rsa-sha256", 200_000)] // one blob upload, signed in memory
    [InlineData("ed25519-sha256", 6_000_000)] // beyond the 4 MiB head buffer: spooled to a temporary file and signed there
    public async Task Message_signed_at_submission_verifies_at_the_receiver(string algorithm, int bodyBytes)
    {
        var key = algorithm == "rsa-sha256" ? DkimTestKey.Rsa("signed.example") : DkimTestKey.Ed25519("signed.example");
        await using var world = await SigningWorld.StartAsync(azurite, key);
        var mx = await world.AddMxAsync("dest.example");
        var submitted = Message("sender@signed.example", "r@dest.example", bodyBytes);

        var result = await world.SubmitAsync("sender@signed.example", "r@dest.example", submitted);
        await world.DrainAsync();

        var received = Assert.Single(mx.Messages).Data;
        Assert.StartsWith("DKIM-Signature:", Encoding.ASCII.GetString(received, 0, 20), StringComparison.Ordinal);
        Assert.True(await DkimTestKey.VerifyAsync(received, key));
        // The signature was prepended; the rest is the submission after line-ending normalisation, byte for byte.
        var normalized = Normalize(submitted);
        Assert.Equal(normalized, received[^normalized.Length..]);
        // Sizes count the stored bytes, signature included.
        Assert.Equal(received.Length, result.Size);
        var record = await world.Queue.FindAsync(result.Recipients[0].Id, CancellationToken.None);
        Assert.Equal(received.Length, record!.BodySize);
        Assert.Equal(RecipientState.Delivered, record.State);
        Assert.Equal(bodyBytes < 40_000, record.Body == RecipientRecord.InlineBodyMarker);
        Assert.False(File.Exists(Path.Combine(Path.GetTempPath(), $"clouddelivery-{result.MessageId}.eml")));

        // And the check can fail: one changed body byte and the receiver rejects the signature.
        var tampered = (byte[])received.Clone();
        tampered[^3] = (byte)(tampered[^3] == (byte)'x' ? 'y' : 'x');
        Assert.False(await DkimTestKey.VerifyAsync(tampered, key));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6_000_000)]
    public async Task Message_whose_from_domain_has_no_key_arrives_as_submitted(int bodyBytes)
    {
        await using var world = await SigningWorld.StartAsync(azurite, DkimTestKey.Rsa("signed.example"));
        var mx = await world.AddMxAsync("dest.example");
        var submitted = Message("sender@unsigned.example", "r@dest.example", bodyBytes);

        var result = await world.SubmitAsync("sender@signed.example", "r@dest.example", submitted);
        await world.DrainAsync();

        var received = Assert.Single(mx.Messages).Data;
        Assert.Equal(Normalize(submitted), received);
        Assert.Equal(received.Length, result.Size);
        Assert.DoesNotContain("DKIM-Signature", Encoding.ASCII.GetString(received, 0, 200), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Dsn_from_mailer_daemon_is_signed_with_the_hostname_key()
    {
        var key = DkimTestKey.Ed25519(Hostname);
        await using var world = await SigningWorld.StartAsync(azurite, key);
        world.World.Network.Zone.AddMx("dest.example", 10, "mx.dest.example");
        await world.World.Network.AddMxServerAsync("mx.dest.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.1.1", "no such user"));
        var senderMx = await world.AddMxAsync("sender.example");

        await world.SubmitAsync("sender@sender.example", "gone@dest.example", Message("sender@sender.example", "gone@dest.example", 0));
        await world.DrainAsync();

        var dsn = Assert.Single(senderMx.Messages);
        Assert.Equal(string.Empty, dsn.MailFrom);
        Assert.Equal(Hostname, DkimTestKey.Tags(dsn.Data)["d"]);
        Assert.True(await DkimTestKey.VerifyAsync(dsn.Data, key));
    }

    /// <summary>A message with bare LF line endings (the queue stores CRLF), padded to about <paramref name="bodyBytes"/>.</summary>
    private static byte[] Message(string from, string to, int bodyBytes)
    {
        var text = new StringBuilder()
            .Append($"From: Sender <{from}>\nTo: <{to}>\nSubject: signed at submission\nDate: Tue, 01 Dec 2026 12:00:00 +0000\n")
            .Append($"Message-ID: <{Guid.NewGuid():N}@{from.Split('@')[1]}>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello.\n");
        for (var line = 0; text.Length < bodyBytes; line++)
        {
            text.Append(line).Append(" the quick brown fox jumps over the lazy dog, again and again and again  \n");
        }
        return Encoding.ASCII.GetBytes(text.Append("The end.\n").ToString());
    }

    private static byte[] Normalize(byte[] message) => Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(message).Replace("\n", "\r\n", StringComparison.Ordinal));

    /// <summary>The queue world with a DKIM-configured queue and its own delivery handler.</summary>
    private sealed class SigningWorld : IAsyncDisposable
    {
        private SigningWorld(QueueWorld world, DkimTestKey key)
        {
            World = world;
            Queue = new OutboundQueue(world.Storage, new OutboundQueueOptions { WakeUpWindow = TimeSpan.Zero }, world.Time, new DkimMessageSigner([key.ToKey()]));
            Handler = new DomainDeliveryHandler(Queue, world.Engine, Hostname);
        }

        public QueueWorld World { get; }

        public OutboundQueue Queue { get; }

        public DomainDeliveryHandler Handler { get; }

        public static async Task<SigningWorld> StartAsync(AzuriteFixture azurite, DkimTestKey key) => new(await QueueWorld.StartAsync(azurite), key);

        public async Task<LoopbackSmtpServer> AddMxAsync(string domain)
        {
            World.Network.Zone.AddMx(domain, 10, $"mx.{domain}");
            return await World.Network.AddMxServerAsync($"mx.{domain}");
        }

        public Task<SubmissionResult> SubmitAsync(string from, string to, byte[] message) =>
            Queue.SubmitAsync(new SubmissionRequest { Sender = from, Recipients = [to], Message = new MemoryStream(message) }, CancellationToken.None);

        /// <summary>Handles visible wake-ups with this queue's handler, as the queue trigger does.</summary>
        public async Task DrainAsync()
        {
            while ((await World.Storage.WakeUps.ReceiveMessagesAsync(32)).Value is { Length: > 0 } batch)
            {
                foreach (var message in batch)
                {
                    await Handler.HandleAsync(WakeUp.Parse(message.Body.ToString()), CancellationToken.None);
                    await World.Storage.WakeUps.DeleteMessageAsync(message.MessageId, message.PopReceipt);
                }
            }
        }

        public ValueTask DisposeAsync() => World.DisposeAsync();
    }
}
