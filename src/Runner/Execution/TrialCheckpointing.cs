using Microsoft.Extensions.Logging;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The controller's checkpoint bookkeeping (Ray's TuneController._schedule_trial_save and its cached decisions): saves a
/// trial when its checkpoint frequency or its result asks, to memory at once or to a new folder as a persistent save in
/// flight; while that save is in flight the decision on the result waits here and is handed back when the save completes.
/// </summary>
internal sealed class TrialCheckpointing(ITrialExecutor executor, IExperimentStore store, CallbackList callbacks, ResultRouting routing, ILogger logger)
{
    private readonly Dictionary<Trial, TrialDecision> _waiting = new();

    public bool IsDue(Trial trial, TrialResult result) =>
        trial.Status == TrialStatus.Running && (trial.ShouldCheckpoint() || result.ShouldCheckpoint);

    /// <summary>A memory save now, or a persistent save into a fresh folder (the trial <see cref="Trial.IsSaving"/> until it completes).</summary>
    public void Save(Trial trial)
    {
        if (trial.Checkpointing.Storage == CheckpointStorage.Memory)
        {
            SaveToMemory(trial);
            return;
        }
        trial.IsSaving = true;
        var name = $"checkpoint_{trial.LastResult?.TrainingIteration ?? 0:D6}";
        var dir = Path.Combine(trial.LogDirectory!, name);
        // A folder is written once: after a rollback its name may still belong to a checkpoint whose deletion awaits a commit.
        for (int n = 1; Directory.Exists(dir); n++) dir = Path.Combine(trial.LogDirectory!, $"{name}_{n}");
        executor.SaveToDisk(trial, dir);
    }

    /// <summary>A save made while the trial's result is being routed (PBT's donor save) is stamped with that result.</summary>
    public MemoryCheckpoint SaveToMemory(Trial trial)
    {
        var checkpoint = executor.SaveToMemory(trial, routing.ResultInFlight(trial));
        trial.Checkpoints.OnCheckpoint(checkpoint);
        return checkpoint;
    }

    /// <summary>Keeps <paramref name="decision"/> until the trial's save in flight completes.</summary>
    public void Hold(Trial trial, TrialDecision decision) => _waiting[trial] = decision;

    /// <summary>Drops the decision waiting for a save (the trial stopped, paused or failed meanwhile).</summary>
    public void Forget(Trial trial) => _waiting.Remove(trial);

    /// <summary>Records a completed persistent save and returns the decision that waited for it, if any.</summary>
    public TrialDecision? OnSaved(Trial trial, PersistentCheckpoint checkpoint)
    {
        trial.IsSaving = false;
        var warning = trial.Checkpoints.OnCheckpoint(checkpoint);
        if (warning is not null) logger.LogWarning("Trial {TrialId}: {Warning}", trial.Id, warning);
        store.CheckpointSaved(trial, checkpoint);
        store.TrialChanged(trial);
        callbacks.OnCheckpoint(trial, checkpoint);
        return _waiting.Remove(trial, out var decision) ? decision : null;
    }
}
