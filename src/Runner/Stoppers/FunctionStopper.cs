using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>Ray's FunctionStopper: a user function decides per result; it never stops the whole experiment.</summary>
public sealed class FunctionStopper(Func<string, TrialResult, bool> function) : IStopper
{
    private readonly Func<string, TrialResult, bool> _function = function ?? throw new ArgumentNullException(nameof(function), "function must not be null");

    public bool ShouldStopTrial(string trialId, TrialResult result) => _function(trialId, result);

    public bool ShouldStopAll() => false;
}
