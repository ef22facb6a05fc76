namespace TorchTrials.Runner.Execution;

/// <summary>
/// How many times an executor has started each trial. Every event carries the incarnation it was produced under, so
/// the controller can drop events of an earlier run of the same trial (Ray compares the actor behind a future with
/// the trial's current one). Controller thread only.
/// </summary>
internal sealed class IncarnationCounter
{
    private readonly Dictionary<Trial, int> _counts = new();

    /// <summary>Counts a new start of <paramref name="trial"/> and returns its incarnation (1 for the first).</summary>
    public int Next(Trial trial) => _counts[trial] = _counts.GetValueOrDefault(trial) + 1;

    /// <summary>The current incarnation; 0 before the first start.</summary>
    public int Of(Trial trial) => _counts.GetValueOrDefault(trial);
}
