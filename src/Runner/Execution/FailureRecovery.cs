using Microsoft.Extensions.Logging;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// What the controller does when a trial fails (Ray's TuneController._process_trial_failure with FailureConfig): records
/// the error, then requeues the trial to continue from its latest checkpoint while max_failures allows, or ends it as
/// ERROR and applies fail-fast (stop every other trial, or raise <see cref="TrialFailedException"/>).
/// </summary>
internal sealed class FailureRecovery(
    FailFastMode failFast,
    ITrialControl control,
    ITrialExecutor executor,
    ITrialScheduler scheduler,
    ISearchAlgorithm search,
    TrialStatusBook book,
    CallbackList callbacks,
    ErrorLog errors,
    TrialCheckpointing checkpointing,
    TrialLifecycle lifecycle,
    ILogger logger)
{
    /// <summary>A running trial's trainable threw, or its device was lost.</summary>
    public void OnFailure(Trial trial, Exception error, bool deviceLost)
    {
        if (failFast == FailFastMode.Raise)
            throw new TrialFailedException(trial, error);
        if (trial.Status != TrialStatus.Running) return;
        logger.LogWarning(error, "Trial {TrialId} failed", trial.Id);
        checkpointing.Forget(trial);
        bool recover = trial.ShouldRecover();
        trial.NumFailures++;
        errors.Record(trial, error);
        executor.Stop(trial, error: true);
        trial.IsSaving = false;
        if (deviceLost && trial.Checkpoints.NewestMemory is { } memory && memory.Location is MemoryLocation.Device or MemoryLocation.Remote)
            trial.Checkpoints.ReleaseMemory();

        bool failedRestore = trial.IsRestoring;
        trial.IsRestoring = false;
        if (recover)
        {
            // A checkpoint that fails to restore would fail again: the trial starts over.
            if (failedRestore) trial.Checkpoints.Clear();
            scheduler.OnTrialError(control, trial);
            book.SetStatus(trial, TrialStatus.Pending, deviceLost ? "device lost, requeued" : "failed, requeued");
            scheduler.OnTrialAdd(control, trial);
            return;
        }

        scheduler.OnTrialError(control, trial);
        search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Errored);
        callbacks.OnTrialError(trial);
        trial.Checkpoints.ReleaseMemory();
        book.SetStatus(trial, TrialStatus.Error, "failed");
        FailFastIfNeeded(trial, error);
    }

    /// <summary>A trial could not start (see <see cref="TrialStartException"/>): it ends as ERROR without a retry.</summary>
    public void OnStartFailure(Trial trial, TrialStartException error)
    {
        logger.LogError(error, "Trial {TrialId} could not start", trial.Id);
        trial.NumFailures++;
        errors.Record(trial, error);
        book.SetStatus(trial, TrialStatus.Error, "start failed");
        scheduler.OnTrialError(control, trial);
        search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Errored);
        callbacks.OnTrialError(trial);
        FailFastIfNeeded(trial, error);
    }

    private void FailFastIfNeeded(Trial failed, Exception error)
    {
        if (failFast == FailFastMode.Raise) throw new TrialFailedException(failed, error);
        if (failFast == FailFastMode.StopAll) lifecycle.StopUnfinished("fail_fast");
    }
}
