using System.Text;
using CloudDelivery.Smtp;
using CsCheck;
using Microsoft.Extensions.Time.Testing;

namespace CloudDelivery.Tests.Delivery;

/// <summary>
/// The session's watch over what an SMTP peer sends: the reply deadline (on a fake clock) and the parse of
/// greeting and EHLO replies, which sees untrusted bytes in whatever pieces the network delivers them.
/// </summary>
public class SmtpConversationCaptureTests
{
    private const int LineCap = 4096;

    private static readonly byte[] Interesting = "\n\r- 250"u8.ToArray();

    private static SmtpConversationCapture Capture(TimeProvider time) =>
        new(new SmtpBounds(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(30), LineCap, 64 * 1024, time));

    private static void Server(SmtpConversationCapture capture, string text) => Server(capture, Encoding.Latin1.GetBytes(text));

    private static void Server(SmtpConversationCapture capture, byte[] bytes) => capture.LogServer(bytes, 0, bytes.Length);

    private static void Client(SmtpConversationCapture capture, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        capture.LogClient(bytes, 0, bytes.Length);
    }

    [Fact]
    public void Bytes_that_trickle_in_do_not_extend_the_reply_deadline()
    {
        var time = new FakeTimeProvider();
        using var capture = Capture(time);
        Server(capture, "220 mx.example ESMTP\r\n");
        Client(capture, "EHLO sender.example\r\n");

        for (var i = 0; i < 9; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(100));
            Server(capture, "2");
        }
        Assert.False(capture.Aborted.IsCancellationRequested);
        time.Advance(TimeSpan.FromMilliseconds(150));

        Assert.True(capture.Aborted.IsCancellationRequested);
        Assert.Equal("no complete reply to EHLO within 1 s", capture.Violation);
        Assert.Equal(SmtpBoundKind.ReplyDeadline, capture.ViolatedBound);
    }

    [Fact]
    public void A_complete_reply_restarts_the_deadline_and_time_between_commands_is_not_counted()
    {
        var time = new FakeTimeProvider();
        using var capture = Capture(time);
        time.Advance(TimeSpan.FromMilliseconds(900));
        Server(capture, "220 mx.example ESMTP\r\n");
        time.Advance(TimeSpan.FromMilliseconds(900));
        Assert.False(capture.Aborted.IsCancellationRequested);

        capture.Disarm();
        time.Advance(TimeSpan.FromMinutes(1));

        Assert.False(capture.Aborted.IsCancellationRequested);
        Assert.Equal("mx.example", capture.GreetingName);
    }

    [Fact]
    public void A_line_over_the_cap_is_a_violation_at_once()
    {
        using var capture = Capture(new FakeTimeProvider());

        Server(capture, "220 " + new string('x', LineCap));

        Assert.True(capture.Aborted.IsCancellationRequested);
        Assert.Equal($"greeting line longer than {LineCap} bytes", capture.Violation);
    }

    [Fact]
    public void Ehlo_keywords_are_the_same_however_the_reply_is_split()
    {
        var keyword = Gen.String[Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"], 1, 20];
        var cases = Gen.Select(keyword.List[0, 12], Gen.Int[1, 40].Array[1, 64]);
        cases.Sample(c =>
        {
            var (keywords, pieces) = c;
            using var capture = Capture(new FakeTimeProvider());
            Server(capture, "220 mx.example ESMTP\r\n");
            Client(capture, "EHLO sender.example\r\n");
            var lines = new[] { "mx.example" }.Concat(keywords).ToArray();
            var reply = Encoding.ASCII.GetBytes(string.Concat(lines.Select((l, i) => $"250{(i == lines.Length - 1 ? ' ' : '-')}{l}\r\n")));

            Feed(capture, reply, pieces);

            Assert.Null(capture.Violation);
            Assert.Equal(keywords, capture.EhloKeywords);
        }, iter: 500);
    }

    [Fact]
    public void Arbitrary_server_bytes_never_throw_and_an_overlong_line_is_always_caught()
    {
        // Bytes biased towards what matters to the parse: line ends, continuation marks, digits.
        var interesting = Gen.Int[0, Interesting.Length - 1].Select(i => Interesting[i]);
        var bytes = Gen.Frequency((3, interesting), (1, (Gen<byte>)Gen.Byte)).Array[0, 3000];
        var longLine = Gen.Int[0, 2 * LineCap];
        var cases = Gen.Select(bytes, longLine, Gen.Int[1, 700].Array[1, 32]);
        cases.Sample(c =>
        {
            var (noise, filler, pieces) = c;
            var input = noise.Concat(Enumerable.Repeat((byte)'x', filler)).ToArray();
            using var capture = Capture(new FakeTimeProvider());

            Feed(capture, input, pieces);

            var longest = 0;
            var run = 0;
            foreach (var b in input)
            {
                run = b == (byte)'\n' ? 0 : run + 1;
                longest = Math.Max(longest, run);
            }
            if (longest > LineCap)
            {
                Assert.NotNull(capture.Violation);
            }
        }, iter: 500);
    }

    /// <summary>Gives the bytes to the capture in pieces of the given sizes (cycled), as reads would.</summary>
    private static void Feed(SmtpConversationCapture capture, byte[] bytes, int[] pieces)
    {
        var offset = 0;
        for (var i = 0; offset < bytes.Length; i++)
        {
            var count = Math.Min(pieces[i % pieces.Length], bytes.Length - offset);
            capture.LogServer(bytes, offset, count);
            offset += count;
        }
    }
}
