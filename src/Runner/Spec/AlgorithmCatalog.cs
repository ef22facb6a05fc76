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

    public static ITrialScheduler? Scheduler(SpecReader? r, SpecReader? top, string? metric, MetricMode? mode, long seed)
    {
        if (r is null) return new FifoScheduler();
        var type = r.String("type", "fifo", SchedulerTypes);
        var schedulerMetric = r.String("metric") ?? metric;
        var modeText = r.String("mode", null, new[] { "max", "min" });
        var schedulerMode = modeText is null ? mode : modeText == "max" ? MetricMode.Max : MetricMode.Min;
        int schedulerSeed = (int)(r.Int("seed", null) ?? seed);
        ITrialScheduler? scheduler = null;
        try
        {
            scheduler = type switch
            {
                "asha" => new AshaScheduler(new AshaOptions
                {
                    Metric = schedulerMetric,
                    Mode = schedulerMode,
                    TimeAttr = r.String("time_attr", TrialResult.TrainingIterationKey)!,
                    MaxT = r.Double("max_t", 100) ?? 100,
                    GracePeriod = r.Double("grace_period", 1) ?? 1,
                    ReductionFactor = r.Double("reduction_factor", 4) ?? 4,
                    Brackets = r.Int("brackets", 1) ?? 1,
                    StopLastTrials = r.Bool("stop_last_trials", true) ?? true,
                    Seed = schedulerSeed,
                }),
                "asha_promotion" => new AshaPromotionScheduler(new AshaPromotionOptions
                {
                    Metric = schedulerMetric,
                    Mode = schedulerMode,
                    TimeAttr = r.String("time_attr", TrialResult.TrainingIterationKey)!,
                    MaxT = r.Double("max_t", 100) ?? 100,
                    GracePeriod = r.Double("grace_period", 1) ?? 1,
                    ReductionFactor = r.Double("reduction_factor", 4) ?? 4,
                    MinEarlyStoppingRate = r.Int("min_early_stopping_rate", 0) ?? 0,
                }),
                "hyperband" => new HyperBandScheduler(new HyperBandOptions
                {
                    Metric = schedulerMetric,
                    Mode = schedulerMode,
                    TimeAttr = r.String("time_attr", TrialResult.TrainingIterationKey)!,
                    MaxT = r.Double("max_t", 81) ?? 81,
                    ReductionFactor = r.Double("reduction_factor", 3) ?? 3,
                    StopLastTrials = r.Bool("stop_last_trials", true) ?? true,
                }),
                "median_stopping" => new MedianStoppingRule(new MedianStoppingOptions
                {
                    Metric = schedulerMetric,
                    Mode = schedulerMode,
                    TimeAttr = r.String("time_attr", TrialResult.TimeTotalKey)!,
                    GracePeriod = r.Double("grace_period", 60) ?? 60,
                    MinSamplesRequired = r.Int("min_samples_required", 3) ?? 3,
                    MinTimeSlice = r.Double("min_time_slice", 0) ?? 0,
                    HardStop = r.Bool("hard_stop", true) ?? true,
                }),
                "pbt" => new PopulationBasedTraining(new PbtOptions
                {
                    Metric = schedulerMetric,
                    Mode = schedulerMode,
                    TimeAttr = r.String("time_attr", TrialResult.TimeTotalKey)!,
                    PerturbationInterval = r.Double("perturbation_interval", 60) ?? 60,
                    BurnInPeriod = r.Double("burn_in_period", 0) ?? 0,
                    HyperparamMutations = Mutations(r),
                    QuantileFraction = r.Double("quantile_fraction", 0.25) ?? 0.25,
                    ResampleProbability = r.Double("resample_probability", 0.25) ?? 0.25,
                    PerturbationFactors = Factors(r),
                    Synch = r.Bool("synch", false) ?? false,
                    Seed = schedulerSeed,
                }),
                "pb2" => new Pb2(new Pb2Options
                {
                    Metric = schedulerMetric,
                    Mode = schedulerMode,
                    TimeAttr = r.String("time_attr", TrialResult.TimeTotalKey)!,
                    PerturbationInterval = r.Double("perturbation_interval", 60) ?? 60,
                    HyperparamBounds = Bounds(r),
                    QuantileFraction = r.Double("quantile_fraction", 0.25) ?? 0.25,
                    Synch = r.Bool("synch", false) ?? false,
                    Seed = schedulerSeed,
                }),
                "resource_changing" => ResourceChanging(r, top, metric, mode, seed),
                _ => new FifoScheduler(),
            };
        }
        catch (ArgumentException e)
        {
            r.Error(e.ParamName is { Length: > 0 } p && r.Has(ToSnake(p)) ? ToSnake(p) : "type", e.Message);
        }
        r.Finish();
        return scheduler;
    }

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
        if (r.Raw("perturbation_factors") is not { } node) return new[] { 1.2, 0.8 };
        if (node is JsonArray { Count: 2 } a && SpecReader.TryNumber(a[0], out var up) && SpecReader.TryNumber(a[1], out var down)) return new[] { up, down };
        r.Error("perturbation_factors", $"must be two numbers [up, down], got {node.ToJsonString()}");
        return new[] { 1.2, 0.8 };
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
        var type = r.String("type", "basic", SearcherTypes);
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
                    StartupTrials = r.Int("n_startup_trials", 10, min: 0) ?? 10,
                    EiCandidates = r.Int("n_ei_candidates", 24, min: 1) ?? 24,
                    Multivariate = r.Bool("multivariate", false) ?? false,
                    ConstantLiar = r.Bool("constant_liar", false) ?? false,
                    ConsiderPrior = r.Bool("consider_prior", true) ?? true,
                    PriorWeight = r.Double("prior_weight", 1.0, min: 0, exclusiveMin: true) ?? 1.0,
                    ConsiderMagicClip = r.Bool("consider_magic_clip", true) ?? true,
                    ConsiderEndpoints = r.Bool("consider_endpoints", false) ?? false,
                };
                searcher = new TpeSearcher(metric, mode, options);
                if (metric is null) r.Error("type", "tpe needs the experiment's metric and mode");
                break;
        }
        r.Finish();
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
            var type = r.String("type", null, StopperTypes);
            var stopperMetric = r.String("metric") ?? metric;
            var modeText = r.String("mode", null, new[] { "max", "min" });
            var stopperMode = modeText is null ? mode : modeText == "max" ? MetricMode.Max : MetricMode.Min;
            try
            {
                IStopper? stopper = type switch
                {
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
                r.Error(e.ParamName is { Length: > 0 } p && r.Has(ToSnake(p)) ? ToSnake(p) : "type", e.Message);
            }
            catch (SpecMissingException)
            {
            }
            r.Finish();
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

    /// <summary>"GracePeriod" or "gracePeriod" to "grace_period", to name an option as the spec does.</summary>
    private static string ToSnake(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()));
}
