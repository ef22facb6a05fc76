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

    public static readonly string[] SearcherTypes = { "basic", "random" };

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

    public static (ISearcher? Searcher, ISearchAlgorithm? Algorithm) Searcher(SpecReader? r, string? metric, MetricMode? mode, long seed, int numSamples)
    {
        if (r is null) return (null, null);
        var type = r.String("type", "basic", SearcherTypes);
        long searcherSeed = r.Int("seed", null) ?? seed;
        ISearcher? searcher = type switch
        {
            "random" => new RandomSearcher(searcherSeed),
            _ => null,
        };
        r.Finish();
        return (searcher, null);
    }

    public static IStopper? Stoppers(SpecReader spec, string key, string? metric, MetricMode? mode)
    {
        if (spec.Raw(key) is null) return null;
        spec.Error(key, "no stopper types are available in this build");
        return null;
    }
}
