using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>Settings of <see cref="Pb2"/>, with Ray's defaults.</summary>
public sealed record Pb2Options : MetricSchedulerOptions
{
    public Pb2Options()
        : base(TrialResult.TimeTotalKey)
    {
    }

    public double PerturbationInterval { get; init; } = 60;

    /// <summary>The continuous hyperparameters PB2 chooses, each with its [low, high] bounds.</summary>
    public IReadOnlyDictionary<string, (double Low, double High)> HyperparamBounds { get; init; } = new Dictionary<string, (double, double)>();

    public double QuantileFraction { get; init; } = 0.25;

    public bool LogConfig { get; init; } = true;

    public bool RequireAttrs { get; init; } = true;

    public bool Synch { get; init; }

    /// <summary>Seed of the donor choice and of the acquisition optimiser's starts; null draws a random seed.</summary>
    public int? Seed { get; init; }

    internal PbtOptions ToPbtOptions()
    {
        if (HyperparamBounds is null || HyperparamBounds.Count == 0)
            throw OptionChecks.Fail(nameof(Pb2Options), nameof(HyperparamBounds), n => $"{n(nameof(HyperparamBounds))} must name at least one hyperparameter to use PB2");
        foreach (var (key, (low, high)) in HyperparamBounds)
            if (!double.IsFinite(low) || !double.IsFinite(high) || low >= high)
                throw OptionChecks.Fail(nameof(Pb2Options), nameof(HyperparamBounds), n =>
                    $"{n(nameof(HyperparamBounds))}['{key}'] must be [low, high] with finite low < high, got [{PbtMutation.Fmt(low)}, {PbtMutation.Fmt(high)}]");
        return new PbtOptions
        {
            TimeAttr = TimeAttr,
            Metric = Metric,
            Mode = Mode,
            PerturbationInterval = PerturbationInterval,
            HyperparamMutations = HyperparamBounds.ToDictionary(kv => kv.Key, kv => PbtMutation.Uniform(kv.Value.Low, kv.Value.High)),
            QuantileFraction = QuantileFraction,
            ResampleProbability = 0,
            LogConfig = LogConfig,
            RequireAttrs = RequireAttrs,
            Synch = Synch,
            Seed = Seed,
        };
    }
}

/// <summary>
/// Population Based Bandits (Parker-Holder et al., "Provably Efficient Online Hyperparameter Optimization with
/// Population-Based Bandits", NeurIPS 2020), as Ray Tune's PB2 implements it (python/ray/tune/schedulers/pb2.py and
/// pb2_utils.py): PBT's schedule, quantiles, checkpoints and exploit unchanged, with explore replaced by a GP-bandit
/// choice of bounded continuous hyperparameters.
/// <para>
/// At every perturbation step PB2 records (trial, time, hyperparameters, signed reward). To explore, it takes, per
/// trial and unchanged hyperparameters, the reward change between consecutive records divided by the time between them
/// (the last 1000 such changes; with 200 or more, the window length maximising the GP likelihood), and models it with a
/// time-varying GP (<see cref="TimeVaryingGp"/>) over [time, reward before, hyperparameters], normalised as Ray does
/// (time and reward by their observed range, hyperparameters by their bounds, the changes standardised and clipped to
/// ±2). The donor's latest time and reward are held fixed, and the hyperparameters maximising UCB (mean plus sqrt(beta_t)
/// times the standard deviation, beta_t = 0.2 + max(0, log(0.4 t)), t the number of observations) are chosen, as Ray's
/// optimize_acq chooses them: a bounded quasi-Newton search (L-BFGS-B in Ray, MathNet's BFGS-B here) from 10 random
/// starts in the box; configurations already handed out in the same round join a second GP with label 0, lowering the
/// uncertainty there so one round does not pick the same point twice. The recipient then gets a record at the donor's
/// time and reward under its new hyperparameters, so its next change is measured from the copied state. A donor with no
/// measurable change yet is copied unchanged.
/// </para>
/// <para>
/// Differences from Ray: UCB adds sqrt(beta_t) times the posterior standard deviation, as the paper's GP-UCB does,
/// where Ray's pb2_utils.UCB adds sqrt(beta_t) times the variance (see <see cref="Pb2Selection.Ucb"/>); the GP is this
/// project's (see <see cref="TimeVaryingGp"/>); a hyperparameter missing from a new trial's config is drawn uniformly
/// from its bounds (Ray's PBT treats the [low, high] pair as a two-value list and picks one end); values stay doubles
/// (Ray casts them to float32), and whole-number values stay whole.
/// </para>
/// </summary>
public sealed class Pb2 : PopulationBasedTraining
{
    private readonly Pb2Options _pb2Options;
    private readonly List<Pb2Row> _data = new();
    private readonly List<string> _keys;
    private readonly List<(double Low, double High)> _bounds;
    private List<double[]>? _current;
    private double _lastExplorationTime;

    public Pb2(Pb2Options options)
        : base((options ?? throw new ArgumentNullException(nameof(options))).ToPbtOptions())
    {
        _pb2Options = options;
        _keys = options.HyperparamBounds.Keys.ToList();
        _bounds = _keys.Select(k => options.HyperparamBounds[k]).ToList();
    }

    public new Pb2Options Options => _pb2Options;

    /// <summary>Observations recorded so far (for inspection and tests).</summary>
    internal IReadOnlyList<Pb2Row> Data => _data;

    private protected override void OnPerturbationResult(Trial trial, double time, TrialResult result, double score) =>
        _data.Add(new Pb2Row(trial.Id, time, _keys.Select(k => trial.Config.GetDouble(k)).ToArray(), score));

    private protected override (TrialConfig Config, IReadOnlyDictionary<string, string> Operations) GetNewConfig(Trial trial, Trial donor)
    {
        double latest = _data.Count == 0 ? 0 : _data.Max(r => r.Time);
        if (latest > _lastExplorationTime) _current = null;

        var config = Explore(trial, donor);
        var chosen = _keys.Select(k => config.GetDouble(k)).ToArray();
        latest = _data.Count == 0 ? 0 : _data.Max(r => r.Time);
        if (latest > _lastExplorationTime)
        {
            _lastExplorationTime = latest;
            _current = new List<double[]> { chosen };
        }
        else
        {
            (_current ??= new List<double[]>()).Add(chosen);
        }
        return (config, _keys.ToDictionary(k => k, _ => "pb2"));
    }

    private TrialConfig Explore(Trial trial, Trial donor)
    {
        var rows = Pb2Selection.Differences(_data);
        var donorRows = rows.Where(r => r.Row.Trial == donor.Id).ToList();
        if (donorRows.Count == 0) return donor.Config;

        var x = rows.Select(r => new[] { r.Row.Time, r.RewardBefore }.Concat(r.Row.Hyperparameters).ToArray()).ToList();
        var y = rows.Select(r => r.Change).ToList();
        var last = donorRows[^1];
        var chosen = Pb2Selection.SelectConfig(x, y, _current, new[] { last.Row.Time, last.RewardBefore }, _bounds, Random);

        var config = donor.Config;
        for (int i = 0; i < _keys.Count; i++)
        {
            object value = donor.Config.TryGetValue(_keys[i], out var old) && old is long ? (long)Math.Truncate(chosen[i]) : chosen[i];
            config = config.With(_keys[i], value);
        }
        _data.Add(new Pb2Row(trial.Id, last.Row.Time, _keys.Select(k => config.GetDouble(k)).ToArray(), last.Row.Reward));
        return config;
    }
}
