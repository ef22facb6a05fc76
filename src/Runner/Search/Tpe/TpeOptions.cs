using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>Settings of a <see cref="TpeSearcher"/>; the defaults are Optuna 3.1.0's <c>TPESampler()</c>.</summary>
public sealed record TpeOptions
{
    /// <summary>Random suggestions until this many trials completed or were pruned (Optuna's n_startup_trials).</summary>
    public int StartupTrials { get; init; } = 10;

    /// <summary>Candidates drawn from l(x) per suggestion; the one with the highest l(x)/g(x) wins (n_ei_candidates).</summary>
    public int EiCandidates { get; init; } = 24;

    /// <summary>How many of n observations form l(x) (gamma); Optuna's default_gamma: min(ceil(0.1 n), 25).</summary>
    public Func<int, int> Gamma { get; init; } = DefaultGamma;

    /// <summary>Weights of n observations, oldest first (weights); Optuna's default_weights.</summary>
    public Func<int, double[]> Weights { get; init; } = DefaultWeights;

    /// <summary>Add a prior component (centre of the range, width the whole range) to every estimator (consider_prior).</summary>
    public bool ConsiderPrior { get; init; } = true;

    public double PriorWeight { get; init; } = 1.0;

    /// <summary>Keep every kernel at least range / min(100, 1 + components) wide (consider_magic_clip).</summary>
    public bool ConsiderMagicClip { get; init; } = true;

    /// <summary>Let the outermost kernels' widths see the range ends (consider_endpoints).</summary>
    public bool ConsiderEndpoints { get; init; }

    /// <summary>One joint estimator over all dimensions with Scott's-rule bandwidths (multivariate=True), instead of one per dimension.</summary>
    public bool Multivariate { get; init; }

    /// <summary>Count trials still running as observations with the worst loss, so parallel suggestions spread out (constant_liar).</summary>
    public bool ConstantLiar { get; init; }

    /// <summary>
    /// Subtract log σ in each kernel's log density. Optuna 3.1.0 leaves it out (its <c>_truncnorm.logpdf</c> does not
    /// divide by the scale); later Optuna versions include it. False reproduces 3.1.0.
    /// </summary>
    public bool ScaleKernelDensity { get; init; }

    /// <summary>Same seed, same suggestions. When null a seed is drawn and kept in the saved state.</summary>
    public long? Seed { get; init; }

    /// <summary>Configs to suggest first (Ray's points_to_evaluate, Optuna's enqueue_trial); keys left out are drawn at random.</summary>
    public IReadOnlyList<TrialConfig> PointsToEvaluate { get; init; } = Array.Empty<TrialConfig>();

    /// <summary>Optuna's default_gamma: min(ceil(0.1 n), 25).</summary>
    public static int DefaultGamma(int n) => Math.Min((int)Math.Ceiling(0.1 * n), 25);

    /// <summary>Optuna's hyperopt_default_gamma: min(ceil(0.25 √n), 25).</summary>
    public static int HyperoptGamma(int n) => Math.Min((int)Math.Ceiling(0.25 * Math.Sqrt(n)), 25);

    /// <summary>
    /// Optuna's default_weights: all ones below 25 observations; otherwise the n - 25 oldest get numpy's
    /// linspace(1/n, 1, n - 25) and the 25 newest get 1.
    /// </summary>
    public static double[] DefaultWeights(int n)
    {
        if (n <= 0) return Array.Empty<double>();
        var w = new double[n];
        if (n < 25)
        {
            Array.Fill(w, 1.0);
            return w;
        }
        int ramp = n - 25;
        double start = 1.0 / n;
        if (ramp == 1) w[0] = start;
        else if (ramp > 1)
        {
            double step = (1.0 - start) / (ramp - 1);
            for (int i = 0; i < ramp; i++) w[i] = i * step + start;
            w[ramp - 1] = 1.0;
        }
        for (int i = ramp; i < n; i++) w[i] = 1.0;
        return w;
    }

    internal void Validate()
    {
        if (StartupTrials < 0) throw new ArgumentOutOfRangeException(nameof(StartupTrials), $"TpeOptions.StartupTrials must be 0 or more, got {StartupTrials}");
        if (EiCandidates < 1) throw new ArgumentOutOfRangeException(nameof(EiCandidates), $"TpeOptions.EiCandidates must be at least 1, got {EiCandidates}");
        if (!(PriorWeight > 0 && double.IsFinite(PriorWeight))) throw new ArgumentOutOfRangeException(nameof(PriorWeight), $"TpeOptions.PriorWeight must be positive, got {PriorWeight}");
        ArgumentNullException.ThrowIfNull(Gamma, nameof(Gamma));
        ArgumentNullException.ThrowIfNull(Weights, nameof(Weights));
    }
}
