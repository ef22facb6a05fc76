using TorchTrials.Gpu;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The transitions that take a trial off its slot (Ray's TuneController stop_trial / pause_trial): stop (TERMINATED, by
/// whom), pause (PAUSED with its state in a memory checkpoint), unpause, interrupt (Ctrl-C: back to PENDING) and a change of
/// resources (paused and requeued with the new ones). A stopped
/// or paused trial's save or restore in flight is dropped: its event is stale now, so nothing may wait for it.
/// </summary>
internal sealed class TrialLifecycle(
    ITrialControl control,
    ITrialExecutor executor,
    ITrialScheduler scheduler,
    ISearchAlgorithm search,
    IExperimentStore store,
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

    /// <summary>
    /// Ends a running trial on a stop decision (<see cref="DecisionStep"/> has told the scheduler and the searcher): recorded
    /// as stopped by the decision's maker, or as completed when the trial met its own criteria.
    /// </summary>
    public void Complete(Trial trial, TrialDecision decision)
    {
        executor.Stop(trial, error: false);
        trial.Checkpoints.ReleaseMemory();
        trial.StoppedBy = decision.DecidedBy;
        book.SetStatus(trial, TrialStatus.Terminated, decision.Reason);
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

    /// <summary>Gives the trial <paramref name="resources"/>; true when it was running and now waits, PENDING, to restart with them.</summary>
    public bool ChangeResources(Trial trial, Resources resources)
    {
        var why = executor.Allocator.WhyNeverFits(resources);
        if (why is not null) throw new ResourceRequestException($"trial {trial.Id} {why}");
        if (trial.Status != TrialStatus.Running)
        {
            trial.UpdateResources(resources);
            store.TrialChanged(trial, reason: "resources changed");
            return false;
        }
        Pause(trial);
        trial.UpdateResources(resources);
        book.SetStatus(trial, TrialStatus.Pending, "resources changed");
        return true;
    }

    private static void DropOperationsInFlight(Trial trial)
    {
        trial.IsSaving = false;
        trial.IsRestoring = false;
    }
}
