using TorchTrials.Runner.Callbacks;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Every <see cref="ITrialCallback"/> of an experiment behind one call per hook (Ray's tune/callback.py CallbackList),
/// with the step number and the trial list filled in. Callbacks run in the order given; as in Ray, a callback that throws
/// is not isolated: the exception leaves the controller's step and the callbacks after it miss that hook.
/// </summary>
internal sealed class CallbackList(IEnumerable<ITrialCallback> callbacks, IReadOnlyList<Trial> trials, Func<int> iteration)
{
    private readonly ITrialCallback[] _callbacks = callbacks.ToArray();

    public void OnStepBegin() => Invoke((iteration(), trials), static (cb, s) => cb.OnStepBegin(s.Item1, s.trials));

    public void OnStepEnd() => Invoke((iteration(), trials), static (cb, s) => cb.OnStepEnd(s.Item1, s.trials));

    public void OnTrialStart(Trial trial) => Invoke((iteration(), trials, trial), static (cb, s) => cb.OnTrialStart(s.Item1, s.trials, s.trial));

    public void OnTrialRestore(Trial trial) => Invoke((iteration(), trials, trial), static (cb, s) => cb.OnTrialRestore(s.Item1, s.trials, s.trial));

    public void OnTrialResult(Trial trial, TrialResult result) =>
        Invoke((iteration(), trials, trial, result), static (cb, s) => cb.OnTrialResult(s.Item1, s.trials, s.trial, s.result));

    public void OnTrialComplete(Trial trial) => Invoke((iteration(), trials, trial), static (cb, s) => cb.OnTrialComplete(s.Item1, s.trials, s.trial));

    public void OnTrialError(Trial trial) => Invoke((iteration(), trials, trial), static (cb, s) => cb.OnTrialError(s.Item1, s.trials, s.trial));

    public void OnCheckpoint(Trial trial, Checkpoint checkpoint) =>
        Invoke((iteration(), trials, trial, checkpoint), static (cb, s) => cb.OnCheckpoint(s.Item1, s.trials, s.trial, s.checkpoint));

    public void OnTrialStatusChanged(Trial trial, TrialStatus previous, string reason) =>
        Invoke((trial, previous, reason), static (cb, s) => cb.OnTrialStatusChanged(s.trial, s.previous, s.reason));

    public void OnTrialResumed(Trial trial, IReadOnlyList<TrialResult> history) =>
        Invoke((trial, history), static (cb, s) => cb.OnTrialResumed(s.trial, s.history));

    public void OnExperimentEnd() => Invoke(trials, static (cb, s) => cb.OnExperimentEnd(s));

    /// <summary>Calls <paramref name="hook"/> on each callback in order; <paramref name="state"/> keeps the call free of allocations.</summary>
    private void Invoke<TState>(TState state, Action<ITrialCallback, TState> hook)
    {
        foreach (var callback in _callbacks) hook(callback, state);
    }
}
