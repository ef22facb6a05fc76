using System.Text.Json.Nodes;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Spec;

/// <summary>
/// Builds schedulers, searchers and stoppers from their spec sections (<c>type</c> plus the algorithm's own options, named
/// as Ray names them), recording a problem for every unknown type, unknown key or bad value instead of stopping at the
/// first. Option values the algorithm itself rejects are reported with the algorithm's own message.
/// </summary>
internal static class AlgorithmCatalog
{
    public static readonly string[] SchedulerTypes =
        { "fifo", "asha", "asha_promotion", "hyperband", "median_stopping", "pbt", "pb2", "resource_changing" };

    public static readonly string[] SearcherTypes = { "basic", "random", "tpe" };

    public static readonly string[] StopperTypes = { "maximum_iteration", "trial_plateau", "experiment_plateau", "timeout" };

    // An option missing from the spec takes the algorithm's own default, so each default is stated once, in its options record.
    private static readonly AshaOptions AshaDefaults = new();
    private static readonly AshaPromotionOptions AshaPromotionDefaults = new();
    private static readonly HyperBandOptions HyperBandDefaults = new();
    private static readonly MedianStoppingOptions MedianDefaults = new();
    private static readonly PbtOptions PbtDefaults = new();
    private static readonly Pb2Options Pb2Defaults = new();
    private static readonly TpeOptions TpeDefaults = new();

    public static ITrialScheduler? Scheduler(SpecReader? r, SpecReader? top, string? metric, MetricMode? mode, long seed)
    {
        if (r is null) return new FifoScheduler();
        int known = r.Errors.Count;
        var type = r.String("type", "fifo", SchedulerTypes);
        // With a mistyped type its options are unknown: the type's own error says it all.
        bool typeRejected = r.Errors.Count > known;
        var schedulerMetric = r.String("metric") ?? metric;
        var modeText = r.String("mode", null, new[] { "max", "min" });
        var schedulerMode = modeText is null ? mode : modeText == "max" ? MetricMode.Max : MetricMode.Min;
        int schedulerSeed = (int)(r.Int("seed", null) ?? seed);
        ITrialScheduler? scheduler = null;
        try
        {
            scheduler = type switch
            {
                "asha" => new AshaScheduler(Target(r, AshaDefaults, schedulerMetric, schedulerMode) with
                {
                    MaxT = r.Double("max_t") ?? AshaDefaults.MaxT,
                    GracePeriod = r.Double("grace_period") ?? AshaDefaults.GracePeriod,
                    ReductionFactor = r.Double("reduction_factor") ?? AshaDefaults.ReductionFactor,
                    Brackets = r.Int("brackets") ?? AshaDefaults.Brackets,
                    StopLastTrials = r.Bool("stop_last_trials") ?? AshaDefaults.StopLastTrials,
                    Seed = schedulerSeed,
                }),
                "asha_promotion" => new AshaPromotionScheduler(Target(r, AshaPromotionDefaults, schedulerMetric, schedulerMode) with
                {
                    MaxT = r.Double("max_t") ?? AshaPromotionDefaults.MaxT,
                    GracePeriod = r.Double("grace_period") ?? AshaPromotionDefaults.GracePeriod,
                    ReductionFactor = r.Double("reduction_factor") ?? AshaPromotionDefaults.ReductionFactor,
                    MinEarlyStoppingRate = r.Int("min_early_stopping_rate") ?? AshaPromotionDefaults.MinEarlyStoppingRate,
                }),
                "hyperband" => new HyperBandScheduler(Target(r, HyperBandDefaults, schedulerMetric, schedulerMode) with
                {
                    MaxT = r.Double("max_t") ?? HyperBandDefaults.MaxT,
                    ReductionFactor = r.Double("reduction_factor") ?? HyperBandDefaults.ReductionFactor,
                    StopLastTrials = r.Bool("stop_last_trials") ?? HyperBandDefaults.StopLastTrials,
                }),
                "median_stopping" => new MedianStoppingRule(Target(r, MedianDefaults, schedulerMetric, schedulerMode) with
                {
                    GracePeriod = r.Double("grace_period") ?? MedianDefaults.GracePeriod,
                    MinSamplesRequired = r.Int("min_samples_required") ?? MedianDefaults.MinSamplesRequired,
                    MinTimeSlice = r.Double("min_time_slice") ?? MedianDefaults.MinTimeSlice,
                    HardStop = r.Bool("hard_stop") ?? MedianDefaults.HardStop,
                }),
                "pbt" => new PopulationBasedTraining(Target(r, PbtDefaults, schedulerMetric, schedulerMode) with
                {
                    PerturbationInterval = r.Double("perturbation_interval") ?? PbtDefaults.PerturbationInterval,
                    BurnInPeriod = r.Double("burn_in_period") ?? PbtDefaults.BurnInPeriod,
                    HyperparamMutations = Mutations(r),
                    QuantileFraction = r.Double("quantile_fraction") ?? PbtDefaults.QuantileFraction,
                    ResampleProbability = r.Double("resample_probability") ?? PbtDefaults.ResampleProbability,
                    PerturbationFactors = Factors(r),
                    Synch = r.Bool("synch") ?? PbtDefaults.Synch,
                    Seed = schedulerSeed,
                }),
                "pb2" => new Pb2(Target(r, Pb2Defaults, schedulerMetric, schedulerMode) with
                {
                    PerturbationInterval = r.Double("perturbation_interval") ?? Pb2Defaults.PerturbationInterval,
                    HyperparamBounds = Bounds(r),
                    QuantileFraction = r.Double("quantile_fraction") ?? Pb2Defaults.QuantileFraction,
                    Synch = r.Bool("synch") ?? Pb2Defaults.Synch,
                    Seed = schedulerSeed,
                }),
                "resource_changing" => ResourceChanging(r, top, metric, mode, seed),
                _ => new FifoScheduler(),
            };
        }
        catch (ArgumentException e)
        {
            Reject(r, e);
        }
        if (!typeRejected) r.Finish();
        return scheduler;
    }

    /// <summary>
    /// A metric scheduler's own defaults with the section's metric and mode (the experiment's when absent) and its
    /// <c>time_attr</c>: the keys every metric scheduler shares, read in one place.
    /// </summary>
    private static T Target<T>(SpecReader r, T defaults, string? metric, MetricMode? mode)
        where T : MetricSchedulerOptions =>
        (T)((MetricSchedulerOptions)defaults with { Metric = metric, Mode = mode, TimeAttr = r.String("time_attr") ?? defaults.TimeAttr });

    private static ITrialScheduler ResourceChanging(SpecReader r, SpecReader? top, string? metric, MetricMode? mode, long seed)
    {
        var baseScheduler = Scheduler(r.Child("base"), top, metric, mode, seed) ?? new FifoScheduler();
        var increase = r.Child("increase_by");
        var reserve = r.Child("reserve");
        var policy = new DistributeResources(
            increaseByCpu: increase?.Double("cpu", 0, min: 0) ?? 0,
            increaseByGpu: increase?.Double("gpu", 0, min: 0) ?? 0,
            increaseByTimes: r.Int("increase_by_times", -1) ?? -1,
            reserveCpu: reserve?.Double("cpu", 0, min: 0) ?? 0,
            reserveGpu: reserve?.Double("gpu", 0, min: 0) ?? 0);
        increase?.Finish();
        reserve?.Finish();
        return new ResourceChangingScheduler(baseScheduler, policy.Allocate);
    }

    /// <summary>PBT's hyperparam_mutations: a list (choices) or one of {uniform|loguniform|randint: [low, high]} or {choice: [...]}.</summary>
    private static IReadOnlyDictionary<string, PbtMutation> Mutations(SpecReader r)
    {
        var result = new Dictionary<string, PbtMutation>(StringComparer.Ordinal);
        var section = r.Child("hyperparam_mutations");
        if (section is null) return result;
        foreach (var (key, node) in section.Object.ToList())
        {
            section.Raw(key);
            switch (node)
            {
                case JsonArray list:
                    result[key] = PbtMutation.Choice(list.Select(TrialConfig.FromNode).ToArray());
                    break;
                case JsonObject { Count: 1 } o:
                    var (kind, args) = o.First();
                    var values = (args as JsonArray)?.Select(v => SpecReader.TryNumber(v, out var d) ? d : double.NaN).ToArray() ?? Array.Empty<double>();
                    try
                    {
                        result[key] = kind switch
                        {
                            "uniform" when values.Length == 2 => PbtMutation.Uniform(values[0], values[1]),
                            "loguniform" when values.Length == 2 => PbtMutation.LogUniform(values[0], values[1]),
                            "randint" when values.Length == 2 => PbtMutation.RandInt((long)values[0], (long)values[1]),
                            "choice" when args is JsonArray choices => PbtMutation.Choice(choices.Select(TrialConfig.FromNode).ToArray()),
                            _ => throw new ArgumentException($"must be a list of values or one of uniform, loguniform, randint: [low, high] or choice: [...], got {node.ToJsonString()}"),
                        };
                    }
                    catch (ArgumentException e)
                    {
                        section.Error(key, e.Message);
                    }
                    break;
                default:
                    section.Error(key, $"must be a list of values or a mapping like {{uniform: [low, high]}}, got {node?.ToJsonString() ?? "null"}");
                    break;
            }
        }
        return result;
    }

    private static IReadOnlyList<double> Factors(SpecReader r)
    {
        if (r.Raw("perturbation_factors") is not { } node) return PbtDefaults.PerturbationFactors;
        if (node is JsonArray { Count: 2 } a && SpecReader.TryNumber(a[0], out var up) && SpecReader.TryNumber(a[1], out var down)) return new[] { up, down };
        r.Error("perturbation_factors", $"must be two numbers [up, down], got {node.ToJsonString()}");
        return PbtDefaults.PerturbationFactors;
    }

    /// <summary>PB2's hyperparam_bounds: {name: [low, high]}.</summary>
    private static IReadOnlyDictionary<string, (double Low, double High)> Bounds(SpecReader r)
    {
        var result = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
        var section = r.Child("hyperparam_bounds");
        if (section is null) return result;
        foreach (var (key, node) in section.Object.ToList())
        {
            section.Raw(key);
            if (node is JsonArray { Count: 2 } a && SpecReader.TryNumber(a[0], out var low) && SpecReader.TryNumber(a[1], out var high))
                result[key] = (low, high);
            else
                section.Error(key, $"must be [low, high], got {node?.ToJsonString() ?? "null"}");
        }
        return result;
    }

    /// <summary>
    /// The searcher section: <c>type</c> (basic, random, tpe), the searcher's own options, and for every type
    /// <c>max_concurrent</c> (Ray's ConcurrencyLimiter) and <c>repeat</c> (Ray's Repeater). The basic variant generator is
    /// returned as options for the tuner to build (it needs the trial template).
    /// </summary>
    public static (ISearcher? Searcher, BasicVariantOptions? Variants) Searcher(SpecReader? r, string? metric, MetricMode? mode, long seed, int numSamples)
    {
        if (r is null) return (null, null);
        int known = r.Errors.Count;
        var type = r.String("type", "basic", SearcherTypes);
        bool typeRejected = r.Errors.Count > known;
        long searcherSeed = r.Int("seed", null) ?? seed;
        int maxConcurrent = r.Int("max_concurrent", 0, min: 0) ?? 0;
        int repeat = r.Int("repeat", 1, min: 1) ?? 1;
        ISearcher? searcher = null;
        BasicVariantOptions? variants = null;
        switch (type)
        {
            case "basic":
                variants = new BasicVariantOptions
                {
                    Seed = searcherSeed,
                    MaxConcurrent = maxConcurrent,
                    ConstantGridSearch = r.Bool("constant_grid_search", false) ?? false,
                };
                if (repeat > 1) r.Error("repeat", "applies to model-based searchers (random, tpe); use num_samples for the basic generator");
                break;
            case "random":
                searcher = new RandomSearcher(searcherSeed, metric: metric, mode: mode);
                break;
            case "tpe":
                var options = new TpeOptions
                {
                    Seed = searcherSeed,
                    StartupTrials = r.Int("n_startup_trials", min: 0) ?? TpeDefaults.StartupTrials,
                    EiCandidates = r.Int("n_ei_candidates", min: 1) ?? TpeDefaults.EiCandidates,
                    Multivariate = r.Bool("multivariate") ?? TpeDefaults.Multivariate,
                    ConstantLiar = r.Bool("constant_liar") ?? TpeDefaults.ConstantLiar,
                    ConsiderPrior = r.Bool("consider_prior") ?? TpeDefaults.ConsiderPrior,
                    PriorWeight = r.Double("prior_weight", min: 0, exclusiveMin: true) ?? TpeDefaults.PriorWeight,
                    ConsiderMagicClip = r.Bool("consider_magic_clip") ?? TpeDefaults.ConsiderMagicClip,
                    ConsiderEndpoints = r.Bool("consider_endpoints") ?? TpeDefaults.ConsiderEndpoints,
                };
                searcher = new TpeSearcher(metric, mode, options);
                if (metric is null) r.Error("type", "tpe needs the experiment's metric and mode");
                break;
        }
        if (!typeRejected) r.Finish();
        if (searcher is not null && repeat > 1) searcher = new Repeater(searcher, repeat);
        if (searcher is not null && maxConcurrent > 0) searcher = new ConcurrencyLimiter(searcher, maxConcurrent);
        return (searcher, variants);
    }

    /// <summary>
    /// The stoppers list: each item has a <c>type</c> (maximum_iteration, trial_plateau, experiment_plateau, timeout) and
    /// its options; several combine (any of them stops).
    /// </summary>
    public static IStopper? Stoppers(SpecReader spec, string key, string? metric, MetricMode? mode)
    {
        var node = spec.Raw(key);
        if (node is null) return null;
        if (node is not JsonArray items)
        {
            spec.Error(key, $"must be a list of stoppers such as - {{type: trial_plateau, metric: val_loss}}, got {node.ToJsonString()}");
            return null;
        }
        var stoppers = new List<IStopper>();
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i] is not JsonObject o)
            {
                spec.Error($"{key}[{i}]", "must be a mapping with a type");
                continue;
            }
            var r = new SpecReader(o, spec.KeyPath($"{key}[{i}]"), LinesOf(spec), spec.Errors);
            int known = r.Errors.Count;
            var type = r.String("type", null, StopperTypes);
            bool typeRejected = r.Errors.Count > known;
            var stopperMetric = r.String("metric") ?? metric;
            var modeText = r.String("mode", null, new[] { "max", "min" });
            var stopperMode = modeText is null ? mode : modeText == "max" ? MetricMode.Max : MetricMode.Min;
            try
            {
                IStopper? stopper = type switch
                {
                    null when typeRejected => null,
                    null => Missing(r),
                    "maximum_iteration" => new MaximumIterationStopper(r.Int("max_iter") ?? Required<int>(r, "max_iter")),
                    "trial_plateau" => new TrialPlateauStopper(stopperMetric ?? Required<string>(r, "metric"), r.Double("std", 0.01) ?? 0.01,
                        r.Int("num_results", 4) ?? 4, r.Int("grace_period", 4) ?? 4, r.Double("metric_threshold"), stopperMode),
                    "experiment_plateau" => new ExperimentPlateauStopper(stopperMetric ?? Required<string>(r, "metric"), r.Double("std", 0.001) ?? 0.001,
                        r.Int("top", 10) ?? 10, stopperMode ?? MetricMode.Min, r.Int("patience", 0) ?? 0),
                    "timeout" => new TimeoutStopper(TimeSpan.FromSeconds(r.Double("seconds", min: 0, exclusiveMin: true) ?? Required<double>(r, "seconds"))),
                    _ => null,
                };
                if (stopper is not null) stoppers.Add(stopper);
            }
            catch (ArgumentException e) when (e is not SpecMissingException)
            {
                Reject(r, e);
            }
            catch (SpecMissingException)
            {
            }
            if (!typeRejected) r.Finish();
        }
        return stoppers.Count switch
        {
            0 => null,
            1 => stoppers[0],
            _ => new CombinedStopper(stoppers.ToArray()),
        };
    }

    private static IStopper? Missing(SpecReader r)
    {
        r.Error("type", $"is required (one of {string.Join(", ", StopperTypes)})");
        return null;
    }

    private static T Required<T>(SpecReader r, string key)
    {
        r.Error(key, "is required");
        throw new SpecMissingException();
    }

    private sealed class SpecMissingException : ArgumentException;

    private static IReadOnlyDictionary<string, int> LinesOf(SpecReader spec) => spec.Lines;

    /// <summary>
    /// An option value the algorithm rejected, reported under its key (under <c>type</c> when the spec does not name it) with
    /// every option the message mentions named by its spec key.
    /// </summary>
    private static void Reject(SpecReader r, ArgumentException e)
    {
        var key = e.ParamName is { Length: > 0 } p && r.Has(ToSnake(p)) ? ToSnake(p) : "type";
        r.Error(key, e is OptionException option ? option.Describe(ToSnake) : e.Message);
    }

    /// <summary>"GracePeriod" or "gracePeriod" to "grace_period", to name an option as the spec does.</summary>
    private static string ToSnake(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()));
}
