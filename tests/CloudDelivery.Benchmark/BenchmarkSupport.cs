using System.Net;
using System.Text;

/// <summary>The benchmark's message: headers and lines of text to exactly the asked size, CRLF-terminated.</summary>
internal static class BenchmarkMessages
{
    public static byte[] Make(int size)
    {
        var header = "From: <bench@sender.bench.test>\r\nTo: <user@bench.example>\r\nSubject: benchmark\r\nMessage-ID: <bench@sender.bench.test>\r\n\r\n";
        var text = new StringBuilder(header);
        while (text.Length < size - 2)
        {
            text.Append("The quick brown fox jumps over the lazy dog 0123456789.\r\n");
        }
        return Encoding.ASCII.GetBytes(text.ToString()[..(size - 2)] + "\r\n");
    }
}

internal static class LoopbackPorts
{
    /// <summary>A TCP port free on 127.0.0.1 right now.</summary>
    public static int Free()
    {
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
