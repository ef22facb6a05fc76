using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>
/// Ray's MaximumIterationStopper: counts the results each trial reports (not its training_iteration, so a restored
/// trial counts from where this stopper last saw it) and stops the trial at the <c>max_iter</c>-th.
/// </summary>
public sealed class MaximumIterationStopper : IStopper
{
    private readonly Dictionary<string, int> _iterations = new(StringComparer.Ordinal);

    public MaximumIterationStopper(int maxIter) => MaxIter = OptionChecks.AtLeast(maxIter, 1, nameof(MaximumIterationStopper), nameof(maxIter));

    public int MaxIter { get; }

    public bool ShouldStopTrial(string trialId, TrialResult result)
    {
        int seen = _iterations[trialId] = _iterations.GetValueOrDefault(trialId) + 1;
        return seen >= MaxIter;
    }

    public bool ShouldStopAll() => false;
}
