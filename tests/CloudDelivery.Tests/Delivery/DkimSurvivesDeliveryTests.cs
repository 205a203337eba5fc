using System.Security.Cryptography;
using System.Text;
using CloudDelivery.Delivery;
using CloudDelivery.Dns;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using static CloudDelivery.Tests.Delivery.DeliveryEngineTests;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// The receiver's view of byte-exactness: a message DKIM-signed with simple canonicalisation (which
/// tolerates no change at all) still verifies after delivery through the engine, with the public key
/// looked up in the loopback DNS.
/// </summary>
public class DkimSurvivesDeliveryTests
{
    [Fact]
    public async Task Dkim_signature_with_simple_canonicalisation_verifies_at_the_receiver()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("dkim.example", 10, "mx.dkim.example");
        var mx = await world.AddMxServerAsync("mx.dkim.example");
        using var rsa = RSA.Create(2048);
        world.Zone.AddTxt("sel._domainkey.sender.loopback.test", $"v=DKIM1; k=rsa; p={Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo())}");

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Sender", "sender@sender.loopback.test"));
        message.To.Add(new MailboxAddress("Receiver", "r@dkim.example"));
        message.Subject = "Grüße, signed";
        message.Body = new BodyBuilder { TextBody = "Ünïcödé body\r\n.leading dot line\r\nend", HtmlBody = "<p>html part</p>" }.ToMessageBody();
        using var pem = new MemoryStream(Encoding.ASCII.GetBytes(rsa.ExportPkcs8PrivateKeyPem()));
        var signer = new DkimSigner(pem, "sender.loopback.test", "sel")
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Simple,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Simple,
        };
        message.Prepare(EncodingConstraint.EightBit);
        signer.Sign(message, [HeaderId.From, HeaderId.To, HeaderId.Subject, HeaderId.Date, HeaderId.MessageId]);
        using var signed = new MemoryStream();
        message.WriteTo(FormatOptions.Default.Clone(), signed);
        var bytes = signed.ToArray();

        using var engine = world.CreateEngine();
        var outcome = await engine.DeliverAsync(Request("dkim.example", bytes, recipients: "r@dkim.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        var received = MimeMessage.Load(new MemoryStream(Assert.Single(mx.Messages).Data));
        var verifier = new DkimVerifier(new LoopbackDnsKeyLocator(engine.Resolver));
        Assert.True(await verifier.VerifyAsync(received, received.Headers[received.Headers.IndexOf(HeaderId.DkimSignature)]));
    }

    /// <summary>Finds DKIM keys with the engine's resolver (RFC 6376 §3.6.2.2: selector._domainkey.domain TXT).</summary>
    private sealed class LoopbackDnsKeyLocator(DnsResolver resolver) : DkimPublicKeyLocatorBase
    {
        public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

        public override async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
        {
            var txt = await resolver.LookupTxtAsync($"{selector}._domainkey.{domain}", cancellationToken);
            return GetPublicKey(Assert.Single(txt.Records));
        }
    }
}
