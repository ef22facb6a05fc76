namespace TorchTrials.Runner.Execution;

/// <summary>Raised with fail-fast "raise" when a trial fails.</summary>
public sealed class TrialFailedException(Trial trial, Exception error)
    : Exception($"trial {trial.Id} failed: {error.Message}", error)
{
    public Trial Trial { get; } = trial;
}
