using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;

namespace TorchTrials.Runner.Spec;

/// <summary>
/// Builds schedulers, searchers and stoppers from their spec sections (<c>type</c> plus the algorithm's own options),
/// recording a problem for every unknown type, unknown key or bad value instead of stopping at the first.
/// </summary>
internal static class AlgorithmCatalog
{
    public static readonly string[] SchedulerTypes = { "fifo" };

    public static readonly string[] SearcherTypes = { "basic", "random", "tpe" };

    public static readonly string[] StopperTypes = Array.Empty<string>();

    public static ITrialScheduler? Scheduler(SpecReader? r, SpecReader? top, string? metric, MetricMode? mode, long seed)
    {
        if (r is null) return new FifoScheduler();
        var type = r.String("type", "fifo", SchedulerTypes);
        ITrialScheduler? scheduler = type switch
        {
            "fifo" => new FifoScheduler(),
            _ => null,
        };
        r.Finish();
        return scheduler;
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

    public static IStopper? Stoppers(SpecReader spec, string key, string? metric, MetricMode? mode)
    {
        if (spec.Raw(key) is null) return null;
        spec.Error(key, "no stopper types are available in this build");
        return null;
    }
}
