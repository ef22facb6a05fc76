using TorchTrials.Gpu;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>Something that happened to a running trial, reported to the controller.</summary>
public abstract record ExecutorEvent(Trial Trial, int Incarnation);

/// <summary>One or more training results, oldest first.</summary>
public sealed record ResultEvent(Trial Trial, int Incarnation, IReadOnlyList<TrialResult> Results) : ExecutorEvent(Trial, Incarnation)
{
    /// <summary>False while the trial still works through the steps it was granted; more results follow.</summary>
    public bool EndOfTraining { get; init; } = true;
}

/// <summary>A persistent save finished.</summary>
public sealed record SaveEvent(Trial Trial, int Incarnation, PersistentCheckpoint Checkpoint) : ExecutorEvent(Trial, Incarnation);

/// <summary>A restore from a persistent checkpoint finished.</summary>
public sealed record RestoreEvent(Trial Trial, int Incarnation) : ExecutorEvent(Trial, Incarnation);

/// <summary>The trial's trainable threw, or its device was lost.</summary>
public sealed record FailureEvent(Trial Trial, int Incarnation, Exception Error, bool DeviceLost = false) : ExecutorEvent(Trial, Incarnation);

/// <summary>A trial could not be started (an invalid trainable, a failed setup on the inline executor, a reuse that could not reset).</summary>
public sealed class TrialStartException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Runs trials on device slots. The controller calls these operations from its own thread; training, saves
/// and restores happen on each trial's thread (or inline) and come back as <see cref="ExecutorEvent"/>s.
/// A distributed executor implements the same seam; ExecutorContractTests in the unit tests is the suite every
/// implementation passes.
/// <para>
/// Failures: <see cref="Start"/> throws <see cref="TrialStartException"/> only for what it can tell before the trial runs
/// anything (an unknown trainable, a reused trainable that cannot reset). A trainable whose setup throws is one too on
/// the inline executor, which builds it inside Start, and a <see cref="FailureEvent"/> on executors that build it on the
/// trial's own thread (the one difference left, since only the latter can start without waiting). Everything that goes wrong while the trial runs, the restore of the
/// checkpoint it starts from included (memory or persistent), and a failed memory save or exploit, is a
/// <see cref="FailureEvent"/>: the controller's failure recovery (max_failures, fail-fast) then decides. This follows Ray's
/// ray_trial_executor, where a restore (restore_from_object for a memory checkpoint) is a remote call whose error
/// surfaces with the trial's next result and goes through _process_trial_failure, not through start_trial's error path.
/// After a failure the trial's later operations are skipped (a pending memory save among them fails) until it is stopped.
/// </para>
/// </summary>
public interface ITrialExecutor : IDisposable
{
    DeviceSlotAllocator Allocator { get; }

    /// <summary>The resources held now, one line for the progress display (an executor over several machines sums them).</summary>
    string DescribeUsage() => Allocator.DescribeUsage();

    /// <summary>The budgeted store that memory checkpoints live in.</summary>
    MemoryCheckpointStore CheckpointStore { get; }

    /// <summary>True when a slot for the trial's resources is free now.</summary>
    bool HasResourcesFor(Trial trial);

    /// <summary>
    /// Grants a slot, builds (or reuses) the trainable and, when <paramref name="checkpoint"/> is given, restores it: a memory
    /// checkpoint before any training, a persistent one as a <see cref="RestoreEvent"/> (and <see cref="Trial.IsRestoring"/> is set).
    /// Returns false when no slot is free; throws <see cref="TrialStartException"/> when the trial cannot start; a restore
    /// that fails is the trial's <see cref="FailureEvent"/>.
    /// </summary>
    bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory);

    /// <summary>Lets a running trial train up to <paramref name="steps"/> more iterations (ignored while it still has steps granted).</summary>
    void ContinueTraining(Trial trial, int steps = 1);

    /// <summary>
    /// Saves the trial's state to a memory checkpoint (in the store), completed on the trial's thread, stamped with
    /// <paramref name="result"/> (the trial's last result when null).
    /// </summary>
    MemoryCheckpoint SaveToMemory(Trial trial, TrialResult? result = null);

    /// <summary>Saves the trial to files in <paramref name="directory"/>; completes with a <see cref="SaveEvent"/>.</summary>
    void SaveToDisk(Trial trial, string directory);

    /// <summary>Loads another trial's checkpoint into this running trial and applies <paramref name="config"/> (PBT exploit).</summary>
    void Exploit(Trial trial, Checkpoint donor, TrialConfig config);

    /// <summary>Ends the trial's run and frees its slot (or keeps both for reuse when allowed and not an error).</summary>
    void Stop(Trial trial, bool error);

    /// <summary>Sends the operations queued during this step to the trial threads (one wake-up per thread per step).</summary>
    void Dispatch() { }

    /// <summary>
    /// The next event; null when none arrived within <paramref name="timeout"/>, or early when a slot was freed (so the
    /// caller can start a waiting trial on it before waiting again).
    /// </summary>
    ExecutorEvent? NextEvent(TimeSpan timeout);

    /// <summary>True while any trial has work queued or running, or a slot is still being freed.</summary>
    bool HasWork { get; }

    /// <summary>Trials whose device was lost since the last call.</summary>
    IReadOnlyList<Trial> TakeLostTrials();

    /// <summary>The current incarnation of a running trial (events of older ones are stale).</summary>
    int IncarnationOf(Trial trial);

    /// <summary>
    /// The controller that drives this executor hands over its view of the trials (pending, paused), once, before its
    /// first step; an executor whose admission depends on what waits (the fused executor) reads it.
    /// </summary>
    void Attach(ITrialControl control) { }

    /// <summary>Pending trials the controller should keep queued so the executor can fill what it has (0: no opinion).</summary>
    int PendingTrialsWanted => 0;

}

/// <summary>Builds the context a trial's trainable sees for a slot.</summary>
public delegate TrainableContext TrainableContextFactory(Trial trial, DeviceSlot slot);

/// <summary>Options shared by the executors.</summary>
public sealed record ExecutorOptions
{
    /// <summary>Reuse a finished trial's trainable (and slot) for the next trial with the same resources, through Reset.</summary>
    public bool ReuseTrainables { get; init; }

    /// <summary>Bytes of memory checkpoints allowed per accelerator device before the oldest spill to host memory.</summary>
    public long DeviceCheckpointBudgetBytes { get; init; } = 2L << 30;

    /// <summary>Bytes of memory checkpoints allowed in host memory before the oldest spill to disk.</summary>
    public long HostCheckpointBudgetBytes { get; init; } = 4L << 30;

    /// <summary>Where spilled checkpoints go; defaults to a folder under the system temp directory.</summary>
    public string? SpillDirectory { get; init; }
}
