using System.Text.Json.Nodes;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using static TorchTrials.Tests.Search.SearchTestKit;

namespace TorchTrials.Tests.Search;

/// <summary>Ray's SearchGenerator: a searcher's suggestions become trials, num_samples of them, with ids under one prefix per experiment and Ray's tags.</summary>
public class SearchGeneratorTests
{
    private static SearchSpace Space() => new()
    {
        ["lr"] = Domain.LogUniform(1e-4, 1e-1),
        ["width"] = Domain.Choice(64, 128),
        ["act"] = Domain.Grid("relu", "tanh"),
        ["epochs"] = 3,
    };

    [Fact]
    public void It_stops_after_num_samples_trials_with_unique_ids_under_the_chosen_prefix()
    {
        var generator = new SearchGenerator(new RandomSearcher(seed: 1), Space(), Template(), numSamples: 5,
            new SearchGeneratorOptions { TrialIdPrefix = "exp" });

        var trials = Drain(generator);

        Assert.Equal(5, trials.Count);
        Assert.Equal(new[] { "exp_00000", "exp_00001", "exp_00002", "exp_00003", "exp_00004" }, trials.Select(t => t.Id));
        Assert.True(generator.IsFinished);
        Assert.Null(generator.NextTrial());
        Assert.Equal(5, generator.TotalSamples);
    }

    [Fact]
    public void Tags_are_Rays_counter_from_one_and_sorted_searched_values()
    {
        var space = new SearchSpace { ["width"] = Domain.Choice(64), ["lr"] = Domain.Choice(0.01), ["epochs"] = 3 };
        var trials = Drain(new SearchGenerator(new RandomSearcher(seed: 1), space, Template(), 3));
        Assert.Equal("3_lr=0.01,width=64", trials[2].ExperimentTag);
        Assert.Equal(new[] { "lr", "width" }, trials[0].EvaluatedParams.Keys.Order());
        Assert.Equal(3L, trials[0].Config["epochs"]);
    }

    [Fact]
    public void Grid_dimensions_are_categories_for_a_searcher()
    {
        var trials = Drain(new SearchGenerator(new RandomSearcher(seed: 2), Space(), Template(), 40));
        Assert.Equal(new object?[] { "relu", "tanh" }, trials.Select(t => t.Config["act"]).Distinct().Order());
    }

    [Fact]
    public void The_searchers_config_is_laid_over_the_templates_base_config()
    {
        var trials = Drain(new SearchGenerator(new RandomSearcher(seed: 2), Space(), Template(TrialConfig.From(("epochs", 99), ("seed", 7))), 1));
        Assert.Equal(3L, trials[0].Config["epochs"]);
        Assert.Equal(7L, trials[0].Config["seed"]);
    }

    [Fact]
    public void A_searcher_configured_for_another_metric_is_refused()
    {
        var searcher = new TpeSearcher("accuracy", MetricMode.Max);
        var e = Assert.Throws<ArgumentException>(() => new SearchGenerator(searcher, Space(), Template(), 1,
            new SearchGeneratorOptions { Metric = "loss", Mode = MetricMode.Min }));
        Assert.Contains("TpeSearcher", e.Message);
    }

    [Fact]
    public void Not_now_produces_no_trial_and_finished_ends_the_search()
    {
        var limited = new ConcurrencyLimiter(new RandomSearcher(seed: 1), maxConcurrent: 1);
        var generator = new SearchGenerator(limited, Space(), Template(), 10);
        var first = generator.NextTrial()!;
        Assert.Null(generator.NextTrial());
        Assert.False(generator.IsFinished);
        generator.OnTrialComplete(first.Id, null, TrialOutcome.Completed);
        Assert.NotNull(generator.NextTrial());

        var finishing = new SearchGenerator(new FinishingSearcher(), Space(), Template(), 10);
        Assert.Null(finishing.NextTrial());
        Assert.True(finishing.IsFinished);
    }

    [Fact]
    public void Resume_continues_the_count_the_prefix_and_the_searchers_stream()
    {
        // Given a generator that produced 2 of its 6 trials and saved its state
        var all = Drain(new SearchGenerator(new RandomSearcher(seed: 4), Space(), Template(), 6)).Select(t => t.Config).ToList();
        var first = new SearchGenerator(new RandomSearcher(seed: 4), Space(), Template(), 6);
        var before = Enumerable.Range(0, 2).Select(_ => first.NextTrial()!).ToList();
        var state = JsonNode.Parse(first.SaveState()!.ToJsonString())!;

        // When a fresh generator (its searcher seeded otherwise) restores that state
        var resumed = new SearchGenerator(new RandomSearcher(seed: 999), Space(), Template(), 6);
        resumed.RestoreState(state);
        var trials = before.Concat(Drain(resumed)).ToList();

        // Then the remaining configs are the first stream's, and the ids continue the first generator's prefix and count
        Assert.Equal(all, trials.Select(t => t.Config));
        string prefix = before[0].Id[..before[0].Id.LastIndexOf('_')];
        Assert.Equal(Enumerable.Range(0, 6).Select(i => TrialIds.Format(prefix, i)), trials.Select(t => t.Id));
    }

    [Fact]
    public void Two_generators_of_one_searcher_seed_give_the_same_configs_under_disjoint_ids()
    {
        var a = Drain(new SearchGenerator(new RandomSearcher(seed: 4), Space(), Template(), 6));
        var b = Drain(new SearchGenerator(new RandomSearcher(seed: 4), Space(), Template(), 6));

        Assert.Equal(a.Select(t => t.Config), b.Select(t => t.Config));
        Assert.Empty(a.Select(t => t.Id).Intersect(b.Select(t => t.Id)));
    }

    [Fact]
    public void Random_searcher_is_deterministic_per_seed_and_spreads_over_the_space()
    {
        string Run(long seed) => string.Join(";", Drain(new SearchGenerator(new RandomSearcher(seed: seed), Space(), Template(), 20)).Select(t => t.Config.ToString()));
        Assert.Equal(Run(3), Run(3));
        Assert.NotEqual(Run(3), Run(4));
        var lrs = Drain(new SearchGenerator(new RandomSearcher(seed: 3), Space(), Template(), 200)).Select(t => (double)t.Config["lr"]!).ToList();
        Assert.All(lrs, lr => Assert.InRange(lr, 1e-4, 1e-1));
        Assert.InRange(lrs.Count(lr => lr < 1e-3), 40, 95);
    }

    [Fact]
    public void Points_to_evaluate_are_suggested_first_with_missing_keys_drawn()
    {
        var searcher = new RandomSearcher(seed: 1, pointsToEvaluate: new[] { TrialConfig.From(("lr", 0.05), ("width", 128)) });
        var trials = Drain(new SearchGenerator(searcher, Space(), Template(), 2));
        Assert.Equal(0.05, trials[0].Config["lr"]);
        Assert.Equal(128L, trials[0].Config["width"]);
        Assert.Contains(trials[0].Config["act"], new object?[] { "relu", "tanh" });
    }

    private sealed class FinishingSearcher : ISearcher
    {
        public string? Metric => null;

        public MetricMode? Mode => null;

        public bool SetSearchProperties(string? metric, MetricMode? mode, SearchSpace space) => true;

        public Suggestion Suggest(string trialId) => Suggestion.Finished;

        public void OnTrialResult(string trialId, TrialResult result) { }

        public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome) { }

        public JsonNode SaveState() => new JsonObject();

        public void RestoreState(JsonNode state) { }
    }
}
