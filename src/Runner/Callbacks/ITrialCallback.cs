using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Callbacks;

/// <summary>
/// Hooks into the controller loop (Ray's Callback). All hooks run on the controller's thread; keep them fast or
/// hand work to another thread through a snapshot.
/// </summary>
public interface ITrialCallback
{
    void OnStepBegin(int iteration, IReadOnlyList<Trial> trials) { }

    void OnStepEnd(int iteration, IReadOnlyList<Trial> trials) { }

    void OnTrialStart(int iteration, IReadOnlyList<Trial> trials, Trial trial) { }

    void OnTrialRestore(int iteration, IReadOnlyList<Trial> trials, Trial trial) { }

    void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result) { }

    void OnTrialComplete(int iteration, IReadOnlyList<Trial> trials, Trial trial) { }

    void OnTrialError(int iteration, IReadOnlyList<Trial> trials, Trial trial) { }

    void OnCheckpoint(int iteration, IReadOnlyList<Trial> trials, Trial trial, Checkpoint checkpoint) { }

    void OnTrialStatusChanged(Trial trial, TrialStatus previous, string reason) { }

    /// <summary>
    /// A resumed experiment loaded <paramref name="trial"/>; <paramref name="history"/> is its stored results, oldest first,
    /// already rolled back to where it continues. Derived records (per-trial files) are brought in line with it.
    /// </summary>
    void OnTrialResumed(Trial trial, IReadOnlyList<TrialResult> history) { }

    void OnExperimentEnd(IReadOnlyList<Trial> trials) { }
}
