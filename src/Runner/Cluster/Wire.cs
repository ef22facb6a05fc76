namespace TorchTrials.Cluster;

/// <summary>A worker's machine as the controller accounts it.</summary>
[GenerateSerializer(GenerateFieldIds = GenerateFieldIds.PublicProperties), Immutable]
public sealed class NodeInfo
{
    /// <summary>The node grain's key: its silo's address.</summary>
    public string Key { get; init; } = "";

    /// <summary>The worker's name (its host name unless given).</summary>
    public string Name { get; init; } = "";

    public int Cpus { get; init; }

    public long HostMemoryBytes { get; init; }

    public string[] GpuNames { get; init; } = [];

    public long[] GpuMemoryBytes { get; init; } = [];

    public Dictionary<string, double> Custom { get; init; } = new();
}

/// <summary>What a node operation does.</summary>
public enum NodeOpKind
{
    Start,
    Continue,
    SaveToMemory,
    SaveToDisk,
    Exploit,
    Stop,
    DeleteMemory,
}

/// <summary>
/// A checkpoint as it travels: a memory checkpoint held by a node (<see cref="NodeKey"/> and <see cref="Id"/>), or the
/// state itself (the safetensors bytes and the metadata JSON of a persistent checkpoint or of a memory one that lives on
/// the controller), or a save that failed.
/// </summary>
[GenerateSerializer(GenerateFieldIds = GenerateFieldIds.PublicProperties), Immutable]
public sealed class WireCheckpoint
{
    public string? NodeKey { get; init; }

    public long Id { get; init; }

    public byte[]? Tensors { get; init; }

    public string? MetadataJson { get; init; }

    /// <summary>Restore as a persistent checkpoint (a RestoreEvent follows) rather than a memory one.</summary>
    public bool Persistent { get; init; }

    /// <summary>The result the checkpoint was taken at (the store's JSON form).</summary>
    public string? ResultJson { get; init; }

    /// <summary>Why the save behind this checkpoint failed; restoring it is the trial's failure.</summary>
    public string? Failed { get; init; }
}

/// <summary>One operation for a trial on a node, in the order the controller issued it.</summary>
[GenerateSerializer(GenerateFieldIds = GenerateFieldIds.PublicProperties), Immutable]
public sealed class NodeOp
{
    public NodeOpKind Kind { get; init; }

    public string TrialId { get; init; } = "";

    /// <summary>The controller's incarnation of the trial; the node stamps its events with it.</summary>
    public int Incarnation { get; init; }

    public string? Trainable { get; init; }

    public string? ConfigJson { get; init; }

    public string? ResourcesJson { get; init; }

    public string? Tag { get; init; }

    public long Seed { get; init; }

    public int Steps { get; init; }

    public WireCheckpoint? Checkpoint { get; init; }

    /// <summary>The memory checkpoint's id, chosen by the controller (SaveToMemory, DeleteMemory).</summary>
    public long CheckpointId { get; init; }

    /// <summary>The result a save (to memory or to disk) is stamped with: the controller's newest.</summary>
    public string? ResultJson { get; init; }

    public bool Error { get; init; }

    /// <summary>Start: lanes per fused array when the sweep fuses (spec <c>executor: {fuse: auto}</c>), 0 when it does not.</summary>
    public int MaxMembers { get; init; }
}

/// <summary>How a start went on the node.</summary>
public enum StartOutcome
{
    Started,
    NoSlot,
    CannotStart,
    ResourceRequest,
}

[GenerateSerializer(GenerateFieldIds = GenerateFieldIds.PublicProperties), Immutable]
public sealed class StartReply
{
    public StartOutcome Outcome { get; init; }

    public string? Message { get; init; }

    public bool Restoring { get; init; }

    /// <summary>The node's orphan epoch when the trial started (see <see cref="NodeEventBatch.OrphanEpoch"/>).</summary>
    public long OrphanEpoch { get; init; }

    /// <summary>The fused array and lane the trial runs in on the node ("a3.1"), null when it trains alone.</summary>
    public string? Lane { get; init; }
}

/// <summary>What happened on a node.</summary>
public enum NodeEventKind
{
    Results,
    SavedToDisk,
    Restored,
    Failed,
    SavedToMemory,
    MemorySaveFailed,
    SlotFreed,
}

[GenerateSerializer(GenerateFieldIds = GenerateFieldIds.PublicProperties), Immutable]
public sealed class NodeEvent
{
    public NodeEventKind Kind { get; init; }

    public string TrialId { get; init; } = "";

    public int Incarnation { get; init; }

    /// <summary>Results in the store's JSON form, oldest first.</summary>
    public string[] Results { get; init; } = [];

    /// <summary>The grant's last results. No initializer: Orleans leaves default field values off the wire, so a default of true
    /// would turn every false into true on arrival.</summary>
    public bool EndOfTraining { get; init; }

    public string? Error { get; init; }

    public string? ErrorType { get; init; }

    public bool DeviceLost { get; init; }

    /// <summary>A persistent save's files: the safetensors bytes and the metadata JSON.</summary>
    public byte[]? Tensors { get; init; }

    public string? MetadataJson { get; init; }

    public long CheckpointId { get; init; }

    public long ByteSize { get; init; }
}

/// <summary>The events a node gathered since the last poll, oldest first.</summary>
[GenerateSerializer(GenerateFieldIds = GenerateFieldIds.PublicProperties), Immutable]
public sealed class NodeEventBatch
{
    public NodeEvent[] Events { get; init; } = [];

    /// <summary>
    /// How many times the node stopped every trial because no controller polled it for its lease: a trial started in an
    /// earlier epoch (<see cref="StartReply.OrphanEpoch"/>) no longer runs there, and no event will say so.
    /// </summary>
    public long OrphanEpoch { get; init; }
}
