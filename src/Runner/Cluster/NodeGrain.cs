using Orleans.Concurrency;

namespace TorchTrials.Cluster;

/// <summary>
/// The grain of one worker: placed on its own silo (<see cref="NodePlacement"/>), it forwards to the silo's
/// <see cref="ClusterNode"/> (through its <see cref="ClusterNodeHost"/>). Reentrant, so a long poll for events never holds back the operations behind it; the
/// controller awaits each Apply and Start before the next, which keeps them in order.
/// </summary>
[NodePlacement, Reentrant]
internal sealed class NodeGrain(ClusterNodeHost host) : Grain, INodeGrain
{
    private ClusterNode Node => host.Node;

    public Task<NodeInfo> Describe() => Task.FromResult(Node.Describe(this.GetPrimaryKeyString()));

    public Task Apply(NodeOp[] ops) => Node.Apply(ops);

    public Task<StartReply> Start(NodeOp op) => Node.Start(op);

    public Task<NodeEventBatch> Poll(int waitMilliseconds) => Node.Poll(waitMilliseconds);

    public Task<WireCheckpoint> Fetch(long checkpointId) => Node.Fetch(checkpointId);

    public Task Release() => Node.Release();
}
