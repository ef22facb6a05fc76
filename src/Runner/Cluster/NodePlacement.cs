using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace TorchTrials.Cluster;

/// <summary>
/// Places a node grain on the one silo its key names (the key is that silo's <see cref="SiloAddress.ToParsableString"/>),
/// so each machine's inventory and slots are owned by the process that runs on that machine. Orleans' own
/// SiloRoleBasedPlacement keys by role name, which is the entry assembly's name and the same on every worker, so it
/// cannot tell workers apart. A key whose silo is not active fails the call: a lost machine's node is never
/// re-created elsewhere.
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class NodePlacement : PlacementStrategy
{
    internal static NodePlacement Instance { get; } = new();
}

/// <summary>Marks a grain class as placed by <see cref="NodePlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class NodePlacementAttribute : PlacementAttribute
{
    public NodePlacementAttribute() : base(NodePlacement.Instance) { }
}

internal sealed class NodePlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString();
        var compatible = context.GetCompatibleSilos(target);
        foreach (var silo in compatible)
            if (silo.ToParsableString() == key) return Task.FromResult(silo);
        throw new OrleansException($"node {key} is not an active worker of this cluster");
    }
}
