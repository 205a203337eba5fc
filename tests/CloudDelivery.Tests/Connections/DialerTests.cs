using System.Net;
using System.Net.Sockets;
using CloudDelivery.Dialing;

namespace CloudDelivery.Tests.Connections;

/// <summary>The one dialler, over real sockets on loopback.</summary>
public class DialerTests
{
    [Fact]
    public async Task Connects_to_the_first_permitted_address_that_answers()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        var result = await new Dialer(AddressPolicy.AllowPrivate, TimeSpan.FromSeconds(5)).DialAsync([IPAddress.Loopback], port, CancellationToken.None);

        using var socket = Assert.IsType<Socket>(result.Socket);
        Assert.Equal(IPAddress.Loopback, result.Address);
        Assert.Null(result.LastFailure);
    }

    [Fact]
    public async Task A_forbidden_address_is_not_dialled_and_says_why()
    {
        var result = await new Dialer(AddressPolicy.PublicOnly).DialAsync([IPAddress.Loopback], 25, CancellationToken.None);

        Assert.Null(result.Socket);
        Assert.Equal(DialOutcome.RefusedByPolicy, result.LastFailure!.Outcome);
        Assert.Contains("loopback", result.LastFailure.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unrestricted_policy_permits_what_public_only_refuses()
    {
        Assert.Null(AddressPolicy.Unrestricted.Refusal(IPAddress.Loopback));
        Assert.NotNull(AddressPolicy.PublicOnly.Refusal(IPAddress.Loopback));
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();

        var result = await new Dialer(AddressPolicy.Unrestricted).DialAsync([IPAddress.Loopback], ((IPEndPoint)listener.LocalEndpoint).Port, CancellationToken.None);

        result.Socket!.Dispose();
    }

    [Fact]
    public async Task A_closed_port_fails_with_the_socket_error_and_the_last_address()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now

        var result = await new Dialer(AddressPolicy.AllowPrivate, TimeSpan.FromSeconds(5)).DialAsync([IPAddress.Loopback], port, CancellationToken.None);

        Assert.Null(result.Socket);
        Assert.Equal(DialOutcome.Failed, result.LastFailure!.Outcome);
        Assert.Equal(IPAddress.Loopback, result.LastFailure.Address);
        Assert.IsType<SocketException>(result.LastFailure.Cause);
    }

    [Fact]
    public async Task No_addresses_is_no_socket_and_no_failure()
    {
        var result = await new Dialer(AddressPolicy.AllowPrivate).DialAsync([], 25, CancellationToken.None);

        Assert.Null(result.Socket);
        Assert.Null(result.LastFailure);
    }

    [Fact]
    public void One_per_family_keeps_the_first_of_each_in_order()
    {
        IPAddress[] addresses = [IPAddress.Parse("127.0.0.2"), IPAddress.IPv6Loopback, IPAddress.Parse("127.0.0.3"), IPAddress.Parse("::2")];

        Assert.Equal([IPAddress.Parse("127.0.0.2"), IPAddress.IPv6Loopback], Dialer.OnePerFamily(addresses));
    }
}
