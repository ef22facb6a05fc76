using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Ray's FIFOScheduler: every trial runs to its stopping criteria; the first pending trial that fits starts
/// next, then the first paused one. Results can be buffered because it never pauses or exploits.
/// </summary>
public sealed class FifoScheduler : TrialSchedulerBase
{
    public override bool SupportsResultBuffering => true;

    public override bool AlwaysContinues => true;

    public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result) => SchedulerDecision.Continue;

    /// <summary>The first pending trial with room to start, else the first paused one (Ray's FIFO choose_trial_to_run).</summary>
    public static Trial? FirstRunnable(ITrialControl control)
    {
        foreach (var trial in control.PendingTrials)
            if (control.HasResourcesFor(trial)) return trial;
        foreach (var trial in control.PausedTrials)
            if (control.HasResourcesFor(trial)) return trial;
        return null;
    }
}
