using System.Net.Sockets;

namespace CloudDelivery.Loopback;

/// <summary>
/// The accept loop of every loopback server: take connections until stopped, serve each on its own task,
/// and let a misbehaving peer end only its own connection.
/// </summary>
internal static class AcceptLoop
{
    public static async Task RunAsync(TcpListener listener, Func<Socket, Task> serve, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(stopping);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            socket.NoDelay = true;
            _ = Task.Run(async () =>
            {
                try
                {
                    await serve(socket);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or System.Security.Authentication.AuthenticationException or InvalidOperationException or EndOfStreamException)
                {
                    // The peer went away or misbehaved; only this connection ends.
                }
                finally
                {
                    socket.Dispose();
                }
            }, CancellationToken.None);
        }
    }
}
