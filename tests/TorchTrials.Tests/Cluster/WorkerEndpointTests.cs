using TorchTrials.Cluster;

namespace TorchTrials.Tests.Cluster;

/// <summary>Where localhost workers listen: one primary on the well-known ports at a time, every other on ports of its own.</summary>
public sealed class WorkerEndpointTests
{
    /// <summary>
    /// Nothing listens yet when two workers start together, so a port check alone gives both the primary's ports (Orleans
    /// binds with port reuse, and both then act as primary): the machine-wide primary lock decides.
    /// </summary>
    [Fact]
    public void Two_localhost_workers_picking_ports_at_once_get_one_primary()
    {
        int gateway = Random.Shared.Next(33000, 34000);
        var connection = ClusterConnection.Parse($"localhost:{gateway}");
        int primarySilo = ClusterConnection.DefaultSiloPort + (gateway - ClusterConnection.DefaultGatewayPort);

        using (var first = WorkerEndpoint.For(connection))
        using (var second = WorkerEndpoint.For(connection))
        {
            Assert.Equal((primarySilo, gateway), (first.SiloPort, first.GatewayPort));
            Assert.NotEqual(gateway, second.GatewayPort);
            Assert.NotEqual(primarySilo, second.SiloPort);
        }

        // The primary gone, the next worker takes its place.
        using var next = WorkerEndpoint.For(connection);
        Assert.Equal(gateway, next.GatewayPort);
    }
}
