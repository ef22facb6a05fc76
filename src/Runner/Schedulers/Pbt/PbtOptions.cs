using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>Settings of <see cref="PopulationBasedTraining"/>, with Ray's defaults.</summary>
public sealed record PbtOptions : MetricSchedulerOptions
{
    public PbtOptions()
        : base(TrialResult.TimeTotalKey)
    {
    }

    /// <summary>A trial is considered for exploit/explore each time this much <see cref="TimeAttr"/> passed since its last perturbation.</summary>
    public double PerturbationInterval { get; init; } = 60;

    /// <summary>No perturbation before this much <see cref="TimeAttr"/>.</summary>
    public double BurnInPeriod { get; init; }

    /// <summary>Hyperparameters to explore and how (Ray's hyperparam_mutations).</summary>
    public IReadOnlyDictionary<string, PbtMutation> HyperparamMutations { get; init; } = new Dictionary<string, PbtMutation>();

    /// <summary>The bottom fraction copies from the top fraction; between 0 and 0.5.</summary>
    public double QuantileFraction { get; init; } = 0.25;

    /// <summary>Probability of resampling a hyperparameter instead of perturbing it.</summary>
    public double ResampleProbability { get; init; } = 0.25;

    /// <summary>Factors a continuous hyperparameter is multiplied by (one chosen at random).</summary>
    public IReadOnlyList<double> PerturbationFactors { get; init; } = new[] { 1.2, 0.8 };

    /// <summary>Applied after the built-in mutations (Ray's custom_explore_fn).</summary>
    public Func<TrialConfig, TrialConfig>? CustomExploreFn { get; init; }

    /// <summary>Write pbt_global.txt and pbt_policy_{trial}.txt in the experiment directory.</summary>
    public bool LogConfig { get; init; } = true;

    /// <summary>A result without <see cref="TimeAttr"/> or the metric fails the trial (else it is ignored).</summary>
    public bool RequireAttrs { get; init; } = true;

    /// <summary>Synchronous PBT: wait, paused, until every live trial reached the perturbation time, then perturb all.</summary>
    public bool Synch { get; init; }

    /// <summary>Seed of every random choice (quantile donor, explore); null draws a random seed.</summary>
    public int? Seed { get; init; }

    internal PbtOptions Validate()
    {
        ValidateTimeAttr();
        if (HyperparamMutations is null) throw OptionChecks.Fail(nameof(PbtOptions), nameof(HyperparamMutations), n => $"{n(nameof(HyperparamMutations))} must not be null");
        if (HyperparamMutations.Count == 0 && CustomExploreFn is null)
            throw OptionChecks.Fail(nameof(PbtOptions), nameof(HyperparamMutations), n =>
                $"{n(nameof(HyperparamMutations))} or {n(nameof(CustomExploreFn))} must be given to use PBT");
        foreach (var (key, mutation) in HyperparamMutations)
            if (mutation is null) throw OptionChecks.Fail(nameof(PbtOptions), nameof(HyperparamMutations), n => $"{n(nameof(HyperparamMutations))}['{key}'] must not be null");
        OptionChecks.Between(QuantileFraction, 0, 0.5, nameof(PbtOptions), nameof(QuantileFraction));
        OptionChecks.Positive(PerturbationInterval, nameof(PbtOptions), nameof(PerturbationInterval));
        OptionChecks.NonNegative(BurnInPeriod, nameof(PbtOptions), nameof(BurnInPeriod));
        OptionChecks.Between(ResampleProbability, 0, 1, nameof(PbtOptions), nameof(ResampleProbability));
        if (PerturbationFactors is null || PerturbationFactors.Count == 0)
            throw OptionChecks.Fail(nameof(PbtOptions), nameof(PerturbationFactors), n => $"{n(nameof(PerturbationFactors))} must hold at least one factor");
        foreach (var factor in PerturbationFactors) OptionChecks.Finite(factor, nameof(PbtOptions), nameof(PerturbationFactors));
        return this;
    }
}

/// <summary>
/// One exploit/explore step (a line of Ray's pbt_global.txt: target tag, clone tag, target iteration, clone iteration,
/// old config, new config), plus the trial ids, the recipient's time, and what explore did to each hyperparameter
/// ("resample", "* 1.2", "shift left", "pb2", ...).
/// </summary>
public sealed record PbtPerturbation(
    string RecipientId,
    string DonorId,
    string RecipientTag,
    string DonorTag,
    long RecipientIteration,
    long DonorIteration,
    TrialConfig DonorConfig,
    TrialConfig NewConfig,
    double Time,
    IReadOnlyDictionary<string, string> Operations);
