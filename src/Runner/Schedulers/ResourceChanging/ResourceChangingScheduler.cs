using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>Decides a trial's new resources after a result; null (or its current resources) keeps them.</summary>
public delegate Resources? ResourceAllocationFunction(ITrialControl control, Trial trial, TrialResult result, ResourceChangingScheduler scheduler);

/// <summary>
/// Ray Tune's ResourceChangingScheduler (python/ray/tune/schedulers/resource_changing_scheduler.py): wraps another
/// scheduler and, whenever that scheduler lets a trial CONTINUE, asks the allocation function for new resources. When
/// they differ from the trial's, <see cref="ITrialControl.ChangeTrialResources"/> pauses the trial into a memory
/// checkpoint, resizes it and restarts it from that checkpoint (at once when the new size fits, else when it does).
/// Ray returns PAUSE and applies the change in choose_trial_to_run; the effect is the same, without a round trip.
/// Every added trial must ask for the first trial's resources (the base), unless this scheduler resized it before.
/// The default allocation is <see cref="DistributeResources"/>.
/// </summary>
public sealed class ResourceChangingScheduler : ITrialScheduler
{
    private readonly ITrialScheduler _base;
    private readonly ResourceAllocationFunction? _allocate;
    private readonly HashSet<string> _reallocated = new(StringComparer.Ordinal);

    /// <param name="baseScheduler">The scheduler making the decisions; FIFO when null.</param>
    /// <param name="allocate">The allocation function; <see cref="DistributeResources"/> when omitted. Pass null explicitly through <see cref="WithoutAllocation"/> to never resize.</param>
    public ResourceChangingScheduler(ITrialScheduler? baseScheduler = null, ResourceAllocationFunction? allocate = null)
    {
        _base = baseScheduler ?? new FifoScheduler();
        _allocate = allocate ?? new DistributeResources().Allocate;
    }

    private ResourceChangingScheduler(ITrialScheduler? baseScheduler, bool noAllocation)
    {
        _base = baseScheduler ?? new FifoScheduler();
        _allocate = noAllocation ? null : new DistributeResources().Allocate;
    }

    /// <summary>A wrapper that never changes resources (Ray's resources_allocation_function=None).</summary>
    public static ResourceChangingScheduler WithoutAllocation(ITrialScheduler? baseScheduler = null) => new(baseScheduler, noAllocation: true);

    public ITrialScheduler BaseScheduler => _base;

    /// <summary>The first trial's resources, which every other trial must match.</summary>
    public Resources? BaseTrialResources { get; private set; }

    /// <summary>The metric of the wrapped scheduler, when it has one.</summary>
    public string? Metric => (_base as TrialSchedulerBase)?.Metric;

    public MetricMode? Mode => (_base as TrialSchedulerBase)?.Mode;

    /// <summary>How many times a trial's resources were changed.</summary>
    public int NumReallocations { get; private set; }

    public bool SetSearchProperties(string? metric, MetricMode? mode) => _base.SetSearchProperties(metric, mode);

    public void Validate() => _base.Validate();

    public void OnTrialAdd(ITrialControl control, Trial trial)
    {
        if (BaseTrialResources is null)
            BaseTrialResources = trial.Resources;
        else if (!_reallocated.Contains(trial.Id) && trial.Resources != BaseTrialResources)
            throw new ArgumentException(
                $"ResourceChangingScheduler doesn't support trials with varying base resources. First trial had {BaseTrialResources}, trial {trial.Id} has {trial.Resources}.");
        _base.OnTrialAdd(control, trial);
    }

    public void OnTrialError(ITrialControl control, Trial trial) => _base.OnTrialError(control, trial);

    public SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
    {
        var decision = _base.OnTrialResult(control, trial, result);
        if (decision != SchedulerDecision.Continue || _allocate is null || trial.Status != TrialStatus.Running) return decision;
        var resources = _allocate(control, trial, result, this);
        if (resources is null || resources == trial.Resources) return decision;
        _reallocated.Add(trial.Id);
        NumReallocations++;
        control.ChangeTrialResources(trial, resources);
        return decision;
    }

    public void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result) => _base.OnTrialComplete(control, trial, result);

    public void OnTrialRemove(ITrialControl control, Trial trial) => _base.OnTrialRemove(control, trial);

    public Trial? ChooseTrialToRun(ITrialControl control) => _base.ChooseTrialToRun(control);

    public bool SupportsResultBuffering => false;

    public string DebugString() => $"(ResourceChangingScheduler) {_base.DebugString()}";
}
