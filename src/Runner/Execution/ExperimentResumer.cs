using Microsoft.Extensions.Logging;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Rebuilds a controller's trials from the store of a killed or finished run (Ray's Tuner.restore with its
/// resume_unfinished / resume_errored / restart_errored): unfinished trials become pending and continue from their
/// latest persistent checkpoint; errored ones stay errored unless <see cref="ResumeOptions"/> asks to resume or restart
/// them. Each trial's stored history is rolled back to where it continues, checkpoint folders no record names are removed,
/// the search algorithm continues where it stopped, and the callbacks' per-trial files catch up with the store.
/// </summary>
internal sealed class ExperimentResumer(IExperimentStore store, ResumeOptions resume, ILogger logger)
{
    /// <param name="added">Tells the scheduler of each trial once it is in the book.</param>
    public void Resume(StoredExperiment stored, string experimentDirectory, ISearchAlgorithm search, TrialStatusBook book,
        CallbackList callbacks, Action<Trial> added)
    {
        long sequence = ExperimentState.Restore(stored.State, search);
        var indexed = stored.Trials.SelectMany(t => t.Checkpoints).Select(c => Path.GetFullPath(c.Path)).ToHashSet(StringComparer.Ordinal);
        foreach (var record in stored.Trials)
        {
            var trial = TrialStateCodec.Decode(record, Warn);
            RemoveUnindexedCheckpoints(trial.LogDirectory ?? Path.Combine(experimentDirectory, trial.DirectoryName), trial, indexed);
            var previous = trial.Status;
            Reopen(trial);
            book.Register(trial, keepSequence: true);
            store.TrialChanged(trial, previous, "resume");
            added(trial);
        }
        book.ContinueSequenceFrom(sequence);
        store.Flush();
        // The store is the source of truth: callbacks (the per-trial files) catch up with each trial's stored history.
        foreach (var trial in book.Trials)
            if (trial.LogDirectory is not null) callbacks.OnTrialResumed(trial, store.ResultsOf(trial.Id));
    }

    private void Warn(string line)
    {
        logger.LogWarning("{Warning}", line);
        resume.OnWarning?.Invoke(line);
    }

    /// <summary>Sets the status the trial resumes with and rolls its stored history back to where it continues.</summary>
    private void Reopen(Trial trial)
    {
        switch (trial.Status)
        {
            case TrialStatus.Running or TrialStatus.Paused or TrialStatus.Pending:
                trial.Status = resume.ResumeUnfinished ? TrialStatus.Pending : TrialStatus.Terminated;
                break;
            case TrialStatus.Error when resume.RestartErrored:
                trial.Checkpoints.Clear();
                trial.NumFailures = 0;
                trial.LastResult = null;
                trial.ErrorMessage = null;
                trial.Status = TrialStatus.Pending;
                store.ResultsRolledBack(trial, 0);
                break;
            case TrialStatus.Error when resume.ResumeErrored:
                trial.NumFailures = 0;
                trial.ErrorMessage = null;
                trial.Status = TrialStatus.Pending;
                break;
        }
        if (trial.Status != TrialStatus.Pending) return;
        store.ResultsRolledBack(trial, trial.Checkpoint?.TrainingIteration ?? 0);
        if (trial.Checkpoint is null) trial.LastResult = null;
    }

    /// <summary>
    /// Removes what a killed run left in a trial's folder that no store record names: half-written checkpoint folders
    /// (<c>*.tmp-*</c>) and complete ones whose index entry was never committed or was already retired.
    /// </summary>
    private static void RemoveUnindexedCheckpoints(string folder, Trial trial, HashSet<string> indexed)
    {
        if (!Directory.Exists(folder)) return;
        foreach (var dir in Directory.EnumerateDirectories(folder, "checkpoint_*"))
        {
            var full = Path.GetFullPath(dir);
            if (indexed.Contains(full) || trial.Checkpoints.ExternalDirectories.Contains(full)) continue;
            try
            {
                Directory.Delete(full, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
