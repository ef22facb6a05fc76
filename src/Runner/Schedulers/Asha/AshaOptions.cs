using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>Settings of <see cref="AshaScheduler"/>, with Ray's AsyncHyperBandScheduler defaults.</summary>
public sealed record AshaOptions : MetricSchedulerOptions
{
    public AshaOptions()
        : base(TrialResult.TrainingIterationKey)
    {
    }

    /// <summary>Trials stop once <see cref="TimeAttr"/> reaches this (when <see cref="StopLastTrials"/>).</summary>
    public double MaxT { get; init; } = 100;

    /// <summary>The first rung: trials younger than this are never stopped.</summary>
    public double GracePeriod { get; init; } = 1;

    /// <summary>Rungs are GracePeriod * ReductionFactor^k; the top 1/ReductionFactor of a rung go on.</summary>
    public double ReductionFactor { get; init; } = 4;

    /// <summary>Number of brackets (early-stopping rates s = 0 .. Brackets-1).</summary>
    public int Brackets { get; init; } = 1;

    /// <summary>Stop trials when they reach <see cref="MaxT"/>.</summary>
    public bool StopLastTrials { get; init; } = true;

    /// <summary>Seed of the bracket draw; null draws a random seed.</summary>
    public int? Seed { get; init; }

    internal AshaOptions Validate()
    {
        ValidateTimeAttr();
        OptionChecks.Rungs(nameof(AshaOptions), MaxT, GracePeriod, ReductionFactor);
        OptionChecks.AtLeast(Brackets, 1, nameof(AshaOptions), nameof(Brackets));
        return this;
    }
}

/// <summary>Settings of <see cref="AshaPromotionScheduler"/> (the paper's r, R, eta and s).</summary>
public sealed record AshaPromotionOptions : MetricSchedulerOptions
{
    public AshaPromotionOptions()
        : base(TrialResult.TrainingIterationKey)
    {
    }

    /// <summary>R, the maximum resource: trials promoted into the top rung train until <see cref="TimeAttr"/> reaches it.</summary>
    public double MaxT { get; init; } = 100;

    /// <summary>r, the minimum resource: the bottom rung.</summary>
    public double GracePeriod { get; init; } = 1;

    /// <summary>eta: rung k sits at r * eta^(s + k) and its top 1/eta are promoted.</summary>
    public double ReductionFactor { get; init; } = 4;

    /// <summary>s, the minimum early-stopping rate.</summary>
    public int MinEarlyStoppingRate { get; init; }

    internal AshaPromotionOptions Validate()
    {
        ValidateTimeAttr();
        OptionChecks.Rungs(nameof(AshaPromotionOptions), MaxT, GracePeriod, ReductionFactor);
        OptionChecks.AtLeast(MinEarlyStoppingRate, 0, nameof(AshaPromotionOptions), nameof(MinEarlyStoppingRate));
        if (AshaPromotionScheduler.TopRung(this) < 0)
            throw OptionChecks.Fail(nameof(AshaPromotionOptions), nameof(MinEarlyStoppingRate), n =>
                $"{n(nameof(MinEarlyStoppingRate))} {MinEarlyStoppingRate} leaves no rung between {n(nameof(GracePeriod))} {OptionChecks.Fmt(GracePeriod)} and {n(nameof(MaxT))} {OptionChecks.Fmt(MaxT)}");
        return this;
    }
}
