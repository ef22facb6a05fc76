using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Schedulers;

/// <summary>What a scheduler decides after a result (Ray's TrialScheduler.CONTINUE / PAUSE / STOP).</summary>
public enum SchedulerDecision
{
    Continue,
    Pause,
    Stop,
}

/// <summary>
/// The controller as schedulers see it (Ray passes the TrialRunner): the trials, resource checks, and the
/// lifecycle operations a scheduler may request. All calls happen on the controller's thread.
/// </summary>
public interface ITrialControl
{
    IReadOnlyList<Trial> Trials { get; }

    /// <summary>Pending trials in the order they were queued.</summary>
    IEnumerable<Trial> PendingTrials { get; }

    /// <summary>Whether the search produces trials independently of results (<see cref="Search.ISearchAlgorithm.SamplesIndependently"/>).</summary>
    bool SearchSamplesIndependently => false;

    /// <summary>Paused trials in the order they were paused.</summary>
    IEnumerable<Trial> PausedTrials { get; }

    bool HasResourcesFor(Trial trial);

    /// <summary>Saves the trial's state to a memory checkpoint (completes on the trial's thread) and records it as the trial's newest.</summary>
    MemoryCheckpoint SaveToMemory(Trial trial);

    void PauseTrial(Trial trial);

    void StopTrial(Trial trial);

    /// <summary>Moves a paused trial back to pending so it can be started again.</summary>
    void UnpauseTrial(Trial trial);

    /// <summary>
    /// PBT's exploit: loads <paramref name="donorCheckpoint"/> into <paramref name="recipient"/> (device to device when both are on one device),
    /// then applies <paramref name="newConfig"/> and <paramref name="newTag"/>. The recipient's older checkpoints can no longer win over it.
    /// </summary>
    void ExploitTrial(Trial recipient, Checkpoint donorCheckpoint, TrialConfig newConfig, string newTag);

    /// <summary>Pauses a trial (keeping its state in memory), changes its resources, and queues it to restart with them.</summary>
    void ChangeTrialResources(Trial trial, Resources resources);

    /// <summary>Seconds since the experiment started (a monotonic clock schedulers can use).</summary>
    double ElapsedSeconds { get; }

    DeviceSlotAllocator Allocator { get; }
}

/// <summary>
/// Decides, result by result, whether a trial continues, pauses or stops, and which waiting trial runs next
/// (Ray's TrialScheduler). Each implementation names the published rule it follows.
/// </summary>
public interface ITrialScheduler
{
    /// <summary>Receives the experiment's metric and mode; false when the scheduler already has different ones.</summary>
    bool SetSearchProperties(string? metric, MetricMode? mode);

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming what is missing when the scheduler cannot run as configured
    /// (ASHA without a metric or mode), once <see cref="SetSearchProperties"/> has run; called before anything is created.
    /// </summary>
    void Validate() { }

    void OnTrialAdd(ITrialControl control, Trial trial);

    void OnTrialError(ITrialControl control, Trial trial);

    SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result);

    void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result);

    void OnTrialRemove(ITrialControl control, Trial trial);

    /// <summary>The next pending or paused trial to start, or null.</summary>
    Trial? ChooseTrialToRun(ITrialControl control);

    /// <summary>True when results may be buffered (the scheduler never pauses or exploits mid-run).</summary>
    bool SupportsResultBuffering => false;

    /// <summary>
    /// True when every decision is <see cref="SchedulerDecision.Continue"/> whatever the result (FIFO). The controller then
    /// lets a trial run ahead to its iteration cap without waiting for each decision, which changes nothing it decides.
    /// </summary>
    bool AlwaysContinues => false;

    string DebugString() => GetType().Name;
}

/// <summary>A base with Ray's defaults: continue every trial, run pending trials first-in first-out, then paused ones.</summary>
public abstract class TrialSchedulerBase : ITrialScheduler
{
    public string? Metric { get; protected set; }

    public MetricMode? Mode { get; protected set; }

    public virtual bool SetSearchProperties(string? metric, MetricMode? mode)
    {
        if ((Metric is not null && metric is not null && Metric != metric) || (Mode is not null && mode is not null && Mode != mode))
            return false;
        Metric ??= metric;
        Mode ??= mode;
        return true;
    }

    public virtual void Validate() { }

    public virtual void OnTrialAdd(ITrialControl control, Trial trial) { }

    public virtual void OnTrialError(ITrialControl control, Trial trial) { }

    public virtual SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result) => SchedulerDecision.Continue;

    public virtual void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result) { }

    public virtual void OnTrialRemove(ITrialControl control, Trial trial) { }

    public virtual Trial? ChooseTrialToRun(ITrialControl control) => FifoScheduler.FirstRunnable(control);

    public virtual bool SupportsResultBuffering => false;

    public virtual bool AlwaysContinues => false;

    public virtual string DebugString() => GetType().Name;

    /// <summary>The metric value of a result signed so that larger is better; throws naming the metric when absent.</summary>
    protected double Score(TrialResult result)
    {
        var metric = Metric ?? throw new InvalidOperationException($"{GetType().Name} needs a metric: set metric in the scheduler or the experiment");
        var value = result.GetDouble(metric);
        return Mode == MetricMode.Min ? -value : value;
    }
}
