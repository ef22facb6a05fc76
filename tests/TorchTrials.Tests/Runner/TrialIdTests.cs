using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;

namespace TorchTrials.Tests.Runner;

/// <summary>Trial ids are unique across experiments (so pooled results never collide) and stable when one is resumed.</summary>
public class TrialIdTests
{
    private static SearchSpace Space() => new() { ["lr"] = Domain.LogUniform(1e-4, 1e-1), ["width"] = Domain.Grid(32, 64) };

    private static RunConfig Run(string storage, string name, params ITrialCallback[] callbacks) => new()
    {
        Name = name,
        StoragePath = storage,
        Stop = Stop.AfterIterations(1),
        Inventory = DeviceInventory.Simulated(1),
        Executor = ExecutorKind.Inline,
        Callbacks = callbacks,
    };

    private static TuneConfig Tune(bool searcher) => new()
    {
        Seed = 5,
        NumSamples = 2,
        Searcher = searcher ? new RandomSearcher(seed: 5) : null,
        Variants = searcher ? null : new BasicVariantOptions { MaxConcurrent = 1 },
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Two_experiments_of_one_space_and_seed_run_the_same_configs_under_disjoint_ids(bool searcher)
    {
        // Given one space, seed and search (the basic generator, or a seeded random searcher) run as two experiments
        using var temp = new TempDir();
        var first = new Tuner("__fake", Space(), Tune(searcher), Run(temp.Path, "first")).Fit();
        var second = new Tuner("__fake", Space(), Tune(searcher), Run(temp.Path, "second")).Fit();

        // Then their trials match config for config in search order, and no trial id of one is a trial id of the other
        var a = first.ToList();
        var b = second.ToList();
        Assert.Equal(searcher ? 2 : 4, a.Count);
        Assert.Equal(a.Select(t => t.Config), b.Select(t => t.Config));
        Assert.Empty(a.Select(t => t.TrialId).Intersect(b.Select(t => t.TrialId)));
    }

    [Fact]
    public void A_resumed_experiment_keeps_its_ids_and_its_new_trials_continue_its_prefix()
    {
        // Given an experiment of 4 trials, one produced at a time, interrupted when its first trial has completed
        using var temp = new TempDir();
        using var interrupt = new CancellationTokenSource();
        var tuner = new Tuner("__fake", Space(), Tune(searcher: false), Run(temp.Path, "exp", new CancelOnComplete(interrupt)));
        var interrupted = tuner.Fit(interrupt.Token);
        Assert.True(interrupted.WasInterrupted);
        var before = interrupted.Select(t => t.TrialId).ToList();
        Assert.NotEmpty(before);
        Assert.True(before.Count < 4, $"the search should still have trials to create, it made {before.Count}");

        // When it is resumed and runs to the end
        var resumed = Tuner.Restore(tuner.ExperimentPath, "__fake", paramSpace: Space(), tuneConfig: Tune(searcher: false),
            runConfig: Run(temp.Path, "exp")).Fit();

        // Then the first trials keep their ids, and every trial, old or new, is "{prefix}_{index}" under the one prefix
        var after = resumed.OrderBy(t => t.TrialId, StringComparer.Ordinal).Select(t => t.TrialId).ToList();
        Assert.Equal(4, after.Count);
        Assert.Equal(before, after.Take(before.Count));
        string prefix = before[0][..before[0].LastIndexOf('_')];
        Assert.Equal(Enumerable.Range(0, 4).Select(i => TrialIds.Format(prefix, i)), after);
    }

    private sealed class CancelOnComplete(CancellationTokenSource cancel) : ITrialCallback
    {
        public void OnTrialComplete(int iteration, IReadOnlyList<Trial> trials, Trial trial) => cancel.Cancel();
    }
}
