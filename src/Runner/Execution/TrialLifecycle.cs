using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The transitions that take a trial off its slot (Ray's TuneController stop_trial / pause_trial): stop (TERMINATED, by
/// whom), pause (PAUSED with its state in a memory checkpoint), unpause, and interrupt (Ctrl-C: back to PENDING). A stopped
/// or paused trial's save or restore in flight is dropped: its event is stale now, so nothing may wait for it.
/// </summary>
internal sealed class TrialLifecycle(
    ITrialControl control,
    ITrialExecutor executor,
    ITrialScheduler scheduler,
    ISearchAlgorithm search,
    TrialStatusBook book,
    TrialCheckpointing checkpointing,
    CallbackList callbacks)
{
    /// <param name="stoppedBy">The scheduler or stopper (or "fail_fast") recorded as having stopped the trial.</param>
    public void Stop(Trial trial, string stoppedBy)
    {
        if (trial.Status is not (TrialStatus.Pending or TrialStatus.Paused or TrialStatus.Running)) return;
        bool waiting = trial.Status != TrialStatus.Running;
        if (!waiting)
        {
            checkpointing.Forget(trial);
            executor.Stop(trial, error: false);
            DropOperationsInFlight(trial);
        }
        trial.Checkpoints.ReleaseMemory();
        trial.StoppedBy = stoppedBy;
        book.SetStatus(trial, TrialStatus.Terminated, waiting ? $"stopped by {stoppedBy} while waiting" : $"stopped by {stoppedBy}");
        if (waiting) scheduler.OnTrialRemove(control, trial);
        else scheduler.OnTrialComplete(control, trial, trial.LastResult);
        search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Pruned);
        callbacks.OnTrialComplete(trial);
    }

    /// <summary>Ends the search and stops every trial not yet finished (a stopper's ShouldStopAll, fail-fast).</summary>
    public void StopUnfinished(string stoppedBy)
    {
        search.SetFinished();
        foreach (var trial in book.Unfinished()) Stop(trial, stoppedBy);
    }

    public void Pause(Trial trial)
    {
        if (trial.Status != TrialStatus.Running)
            throw new InvalidOperationException($"trial {trial.Id} cannot be paused: it is {trial.Status}");
        checkpointing.Forget(trial);
        var checkpoint = executor.SaveToMemory(trial);
        trial.Checkpoints.OnCheckpoint(checkpoint);
        executor.Stop(trial, error: false);
        DropOperationsInFlight(trial);
        book.SetStatus(trial, TrialStatus.Paused, "paused");
    }

    public void Unpause(Trial trial)
    {
        if (trial.Status != TrialStatus.Paused)
            throw new InvalidOperationException($"trial {trial.Id} cannot be unpaused: it is {trial.Status}");
        book.SetStatus(trial, TrialStatus.Pending, "unpaused");
    }

    /// <summary>Stops every running trial without ending it: each is left PENDING, to continue from its latest persistent checkpoint.</summary>
    public void Interrupt()
    {
        foreach (var trial in book.Running())
        {
            executor.Stop(trial, error: true);
            checkpointing.Forget(trial);
            DropOperationsInFlight(trial);
            book.SetStatus(trial, TrialStatus.Pending, "interrupted");
        }
    }

    private static void DropOperationsInFlight(Trial trial)
    {
        trial.IsSaving = false;
        trial.IsRestoring = false;
    }
}
