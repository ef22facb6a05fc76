using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>Ends trials or the whole experiment from results (Ray's Stopper).</summary>
public interface IStopper
{
    /// <summary>True when the trial that reported <paramref name="result"/> should stop.</summary>
    bool ShouldStopTrial(string trialId, TrialResult result);

    /// <summary>True when the whole experiment should stop; asked after every step.</summary>
    bool ShouldStopAll();
}

/// <summary>Stops nothing.</summary>
public sealed class NoopStopper : IStopper
{
    public static NoopStopper Instance { get; } = new();

    public bool ShouldStopTrial(string trialId, TrialResult result) => false;

    public bool ShouldStopAll() => false;
}
