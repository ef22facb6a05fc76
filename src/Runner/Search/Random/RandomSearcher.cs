using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Random search, the baseline: every coordinate of the unit cube drawn uniformly and independently, which draws each
/// dimension from its own distribution (grid values become uniform categories). Learns nothing from results. Same seed,
/// same configs.
/// </summary>
public sealed class RandomSearcher : UnitCubeSearcher
{
    public RandomSearcher(long? seed = null, IEnumerable<TrialConfig>? pointsToEvaluate = null, string? metric = null, MetricMode? mode = null)
        : base(metric, mode, seed, pointsToEvaluate)
    {
    }

    protected override double[] Propose() => RandomPoint();

    public override void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome) { }
}
