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

    void OnExperimentEnd(IReadOnlyList<Trial> trials) { }
}
