namespace TorchTrials.Cluster;

/// <summary>
/// One worker machine (one per silo, placed by <see cref="NodePlacement"/>): it owns the machine's inventory and slot
/// allocator and runs trials with the in-process executors on the machine's own threads and devices. The controller
/// sends operations in order (<see cref="Apply"/>, <see cref="Start"/>) and long-polls for events
/// (<see cref="Poll"/>), so results come back in batches.
/// </summary>
public interface INodeGrain : IGrainWithStringKey
{
    Task<NodeInfo> Describe();

    /// <summary>Applies operations in order (after every earlier call of this controller).</summary>
    Task Apply(NodeOp[] ops);

    /// <summary>Starts a trial: the answer says whether it got a slot (and is restoring from a persistent checkpoint).</summary>
    Task<StartReply> Start(NodeOp op);

    /// <summary>Events since the last poll; waits up to <paramref name="waitMilliseconds"/> for the first.</summary>
    /// <remarks>
    /// Five seconds to answer, not Orleans' thirty: a poll sent through the gateway of a worker that just died waits out
    /// its timeout, and the node stops a controller's trials after ten seconds without a poll (its controller lease).
    /// </remarks>
    [ResponseTimeout("00:00:05")]
    Task<NodeEventBatch> Poll(int waitMilliseconds);

    /// <summary>A memory checkpoint this node holds, as safetensors bytes and metadata (PBT exploit from another machine).</summary>
    Task<WireCheckpoint> Fetch(long checkpointId);

    /// <summary>Stops every trial of this controller and frees their slots (the controller is done or gone).</summary>
    Task Release();
}
