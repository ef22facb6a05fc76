using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// How many iterations a trial may train before the controller must see its results: one (lock-step), unless the
/// scheduler allows result buffering (Ray's TUNE_RESULT_BUFFER_LENGTH); then up to <see cref="ControllerOptions.ResultBufferLength"/>,
/// or without bound under <see cref="ControllerOptions.RunAhead"/>; never past the trial's iteration limit or its next
/// periodic checkpoint.
/// </summary>
internal sealed class RunAheadPolicy(ControllerOptions options, ITrialScheduler scheduler, IStopper stopper)
{
    public int StepsFor(Trial trial)
    {
        long steps;
        if (CanRunAhead(trial)) steps = int.MaxValue;
        else if (options.ResultBufferLength > 1 && scheduler.SupportsResultBuffering) steps = options.ResultBufferLength;
        else return 1;
        long done = trial.LastResult?.TrainingIteration ?? 0;
        if (trial.Stop.TryGetValue(TrialResult.TrainingIterationKey, out var limit)) steps = Math.Min(steps, (long)Math.Ceiling(limit) - done);
        if (trial.Checkpointing.Frequency > 0) steps = Math.Min(steps, trial.Checkpointing.Frequency - done % trial.Checkpointing.Frequency);
        return (int)Math.Clamp(steps, 1, int.MaxValue);
    }

    /// <summary>Every decision until the trial's iteration cap is Continue, whatever the results say (see <see cref="ControllerOptions.RunAhead"/>).</summary>
    private bool CanRunAhead(Trial trial)
    {
        if (!options.RunAhead || !scheduler.AlwaysContinues || stopper is not NoopStopper) return false;
        foreach (var key in trial.Stop.Keys)
            if (key != TrialResult.TrainingIterationKey) return false;
        return true;
    }
}
