using Microsoft.Extensions.DependencyInjection;

namespace TorchTrials.Cluster;

/// <summary>
/// The node a silo serves: set once by a worker; a test may swap it between scenarios while the silo stays up.
/// </summary>
public sealed class ClusterNodeHost
{
    private ClusterNode? _node;

    public ClusterNodeHost(ClusterNode? node = null) => _node = node;

    public ClusterNode Node
    {
        get => Volatile.Read(ref _node) ?? throw new InvalidOperationException("this silo serves no node yet");
        set => Volatile.Write(ref _node, value);
    }
}

/// <summary>Silo set-up for workers.</summary>
public static class ClusterSiloExtensions
{
    /// <summary>Makes the silo a TorchTrials worker: its node grain (placed on it alone) serves <paramref name="host"/>'s node.</summary>
    public static ISiloBuilder AddTorchTrialsNode(this ISiloBuilder silo, ClusterNodeHost host)
    {
        silo.Services.AddSingleton(host);
        silo.AddPlacementDirector<NodePlacement, NodePlacementDirector>();
        return silo;
    }
}
