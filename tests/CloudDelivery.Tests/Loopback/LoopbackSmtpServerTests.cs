using System.Net.Sockets;
using System.Text;
using CloudDelivery.Loopback.Smtp;

namespace CloudDelivery.Tests.Loopback;

public class LoopbackSmtpServerTests
{
    [Fact]
    public async Task Junk_and_bad_sequences_get_errors_and_the_server_keeps_serving()
    {
        await using var server = await LoopbackSmtpServer.StartAsync(new LoopbackSmtpServerOptions());
        using var client = new TcpClient();
        await client.ConnectAsync(server.EndPoint);
        var stream = client.GetStream();
        using var reader = new StreamReader(stream, Encoding.ASCII);
        Assert.StartsWith("220 ", await reader.ReadLineAsync(), StringComparison.Ordinal);

        await stream.WriteAsync(Encoding.ASCII.GetBytes("RCPT TO:<a@b>\r\nXYZZY\r\n" + new string('A', 5000) + "\r\n"));
        Assert.StartsWith("503 ", await reader.ReadLineAsync(), StringComparison.Ordinal);
        Assert.StartsWith("500 ", await reader.ReadLineAsync(), StringComparison.Ordinal);
        Assert.StartsWith("500 ", await reader.ReadLineAsync(), StringComparison.Ordinal);
        client.Client.Shutdown(SocketShutdown.Both);

        // A well-behaved client afterwards is served normally.
        using var second = new TcpClient();
        await second.ConnectAsync(server.EndPoint);
        using var secondReader = new StreamReader(second.GetStream(), Encoding.ASCII);
        Assert.StartsWith("220 ", await secondReader.ReadLineAsync(), StringComparison.Ordinal);
        Assert.Equal(2, server.ConnectionCount);
    }
}
