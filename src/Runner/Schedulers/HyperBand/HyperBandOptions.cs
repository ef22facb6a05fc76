using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>Settings of <see cref="HyperBandScheduler"/>, with Ray's defaults (max_t 81, eta 3).</summary>
public sealed record HyperBandOptions : MetricSchedulerOptions
{
    public HyperBandOptions()
        : base(TrialResult.TrainingIterationKey)
    {
    }

    /// <summary>R: the most <see cref="TimeAttr"/> any trial gets; trials stop there (with <see cref="StopLastTrials"/>).</summary>
    public double MaxT { get; init; } = 81;

    /// <summary>eta: each halving keeps ceil(n / eta) trials and multiplies the milestone by eta.</summary>
    public double ReductionFactor { get; init; } = 3;

    public bool StopLastTrials { get; init; } = true;

    internal HyperBandOptions Validate()
    {
        ValidateTimeAttr();
        OptionChecks.Positive(MaxT, nameof(HyperBandOptions), nameof(MaxT));
        OptionChecks.GreaterThan(ReductionFactor, 1, nameof(HyperBandOptions), nameof(ReductionFactor));
        return this;
    }
}
