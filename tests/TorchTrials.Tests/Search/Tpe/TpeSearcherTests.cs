using System.Text.Json.Nodes;
using TorchTrials.Benchmarks;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using static TorchTrials.Tests.Search.SearchTestKit;

namespace TorchTrials.Tests.Search.Tpe;

/// <summary>TPE as a user sees it: random at first, deterministic per seed, better than random search on standard functions, resumable.</summary>
public class TpeSearcherTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Seeds = 10;
    private const int Evaluations = 100;

    [Fact]
    public void Suggestions_after_2000_observations_stay_inside_every_domain()
    {
        // The speed of this case is measured by the tpe-cost benchmark; here only its suggestions' validity.
        var tpe = new TpeSearcher("loss", MetricMode.Min, new TpeOptions { Seed = 1 });
        Assert.True(tpe.SetSearchProperties(null, null, TpeCostBenchmark.Space()));
        TpeCostBenchmark.AddObservations(tpe, new SearchRandom(2), 2000);
        Assert.Equal(2000, tpe.ObservationCount);
        for (int i = 0; i < 20; i++)
        {
            var config = tpe.Suggest($"t{i}").Config!;
            Assert.InRange(config.GetDouble("a"), 0, 1);
            Assert.InRange(config.GetDouble("b"), -5, 5);
            Assert.InRange(config.GetDouble("c"), 1e-5, 1);
            Assert.InRange(config.GetDouble("d"), 0, 100);
        }
    }

    [Fact]
    public void The_startup_trials_are_random_search_and_tpe_takes_over_after_them()
    {
        var tpe = Configured(new TpeSearcher(options: new TpeOptions { Seed = 5 }), Objectives.BraninSpace());
        var random = Configured(new RandomSearcher(seed: 5), Objectives.BraninSpace());
        var fromTpe = new List<TrialConfig>();
        var fromRandom = new List<TrialConfig>();
        for (int i = 0; i < 11; i++)
        {
            var a = tpe.Suggest($"t{i}").Config!;
            var b = random.Suggest($"t{i}").Config!;
            fromTpe.Add(a);
            fromRandom.Add(b);
            tpe.OnTrialComplete($"t{i}", Loss(Objectives.Branin(a)), TrialOutcome.Completed);
            random.OnTrialComplete($"t{i}", Loss(Objectives.Branin(b)), TrialOutcome.Completed);
        }
        Assert.Equal(fromRandom.Take(10), fromTpe.Take(10));
        Assert.NotEqual(fromRandom[10], fromTpe[10]);
    }

    [Fact]
    public void Pending_trials_do_not_end_the_startup_phase()
    {
        var tpe = Configured(new TpeSearcher(options: new TpeOptions { Seed = 5 }), Objectives.BraninSpace());
        var random = Configured(new RandomSearcher(seed: 5), Objectives.BraninSpace());
        for (int i = 0; i < 15; i++) Assert.Equal(random.Suggest($"t{i}").Config, tpe.Suggest($"t{i}").Config);
    }

    [Fact]
    public void The_same_seed_gives_the_same_suggestions()
    {
        string Run(long seed) => string.Join(";", SearchDriver.Run(new TpeSearcher(options: new TpeOptions { Seed = seed }),
            Objectives.BraninSpace(), Objectives.Branin, 30).History.Select(h => h.Config.ToString()));
        Assert.Equal(Run(8), Run(8));
        Assert.NotEqual(Run(8), Run(9));
    }

    [Fact]
    public void On_Branin_the_median_best_after_100_evaluations_beats_random_search()
    {
        var (tpe, random) = Compare(Objectives.BraninSpace, Objectives.Branin);
        output.WriteLine($"Branin, median best of {Seeds} seeds after {Evaluations} evaluations: TPE {tpe:R}, random {random:R}");
        Assert.True(tpe < random, $"TPE median best {tpe} should be below random search's {random}");
        Assert.InRange(tpe, Objectives.BraninMinimum, 1.0);
    }

    [Fact]
    public void On_Hartmann6_the_median_best_after_100_evaluations_beats_random_search()
    {
        var (tpe, random) = Compare(Objectives.Hartmann6Space, Objectives.Hartmann6);
        output.WriteLine($"Hartmann-6, median best of {Seeds} seeds after {Evaluations} evaluations: TPE {tpe:R}, random {random:R}");
        Assert.True(tpe < random, $"TPE median best {tpe} should be below random search's {random}");
        Assert.InRange(tpe, Objectives.Hartmann6Minimum, -2.0);
    }

    [Fact]
    public void Multivariate_tpe_also_beats_random_search_on_Branin()
    {
        var (tpe, random) = Compare(Objectives.BraninSpace, Objectives.Branin, new TpeOptions { Multivariate = true });
        output.WriteLine($"Branin, multivariate TPE {tpe:R}, random {random:R}");
        Assert.True(tpe < random, $"multivariate TPE median best {tpe} should be below random search's {random}");
    }

    [Fact]
    public void It_learns_which_category_and_which_integer_are_good()
    {
        var space = new SearchSpace
        {
            ["act"] = Domain.Choice("relu", "tanh", "gelu", "elu"),
            ["layers"] = Domain.RandInt(1, 9),
            ["lr"] = Domain.LogUniform(1e-5, 1),
        };
        double Objective(TrialConfig c) =>
            (c.GetString("act") == "gelu" ? 0 : 1) + Math.Abs(c.GetLong("layers") - 6) * 0.3 + Math.Abs(Math.Log10(c.GetDouble("lr")) + 3) * 0.2;
        var run = SearchDriver.Run(new TpeSearcher(options: new TpeOptions { Seed = 1 }), space, Objective, 80);
        var late = run.History.Skip(40).Select(h => h.Config).ToList();
        Assert.True(late.Count(c => c.GetString("act") == "gelu") > late.Count / 2, "TPE should mostly pick the good category late in the run");
        Assert.True(late.Count(c => c.GetLong("layers") is >= 5 and <= 7) > late.Count / 2, "TPE should mostly pick layers near 6");
        Assert.All(run.History, h =>
        {
            Assert.InRange(h.Config.GetLong("layers"), 1, 8);
            Assert.InRange(h.Config.GetDouble("lr"), 1e-5, 1);
        });
    }

    [Fact]
    public void Resume_continues_exactly_where_the_saved_searcher_was()
    {
        var space = Objectives.BraninSpace();
        var original = Configured(new TpeSearcher(options: new TpeOptions { Seed = 3 }), space);
        for (int i = 0; i < 14; i++)
        {
            var c = original.Suggest($"t{i}").Config!;
            if (i < 13) original.OnTrialComplete($"t{i}", Loss(Objectives.Branin(c)), TrialOutcome.Completed);
        }
        original.OnTrialResult("t13", Loss(4.0, 3));
        var state = JsonNode.Parse(original.SaveState().ToJsonString())!;

        var resumed = Configured(new TpeSearcher(options: new TpeOptions { Seed = 999 }), space);
        resumed.RestoreState(state);

        foreach (var searcher in new[] { original, resumed })
            searcher.OnTrialComplete("t13", Loss(3.5, 4), TrialOutcome.Pruned);
        for (int i = 14; i < 20; i++)
        {
            var a = original.Suggest($"t{i}").Config!;
            var b = resumed.Suggest($"t{i}").Config!;
            Assert.Equal(a, b);
            original.OnTrialComplete($"t{i}", Loss(Objectives.Branin(a)), TrialOutcome.Completed);
            resumed.OnTrialComplete($"t{i}", Loss(Objectives.Branin(b)), TrialOutcome.Completed);
        }
        Assert.Equal(original.RankedObservations(), resumed.RankedObservations());
    }

    [Fact]
    public void Evaluated_points_added_from_outside_count_as_observations()
    {
        var tpe = Configured(new TpeSearcher(options: new TpeOptions { Seed = 1 }), Objectives.BraninSpace());
        for (int i = 0; i < 10; i++) tpe.AddEvaluatedPoint(TrialConfig.From(("x1", i - 5.0), ("x2", i * 1.5)), i);
        tpe.AddEvaluatedPoint(TrialConfig.From(("x1", 0.0), ("x2", 0.0)), 2.0, TrialOutcome.Pruned, step: 3);
        Assert.Equal(11, tpe.ObservationCount);
        Assert.Equal(0, tpe.RankedObservations()[0]);
        Assert.Equal(10, tpe.RankedObservations()[^1]);
        var e = Assert.Throws<ArgumentException>(() => tpe.AddEvaluatedPoint(TrialConfig.From(("x1", 1.0)), 1));
        Assert.Contains("'x2'", e.Message);
    }

    [Fact]
    public void Without_a_metric_it_says_what_is_missing()
    {
        var tpe = new TpeSearcher();
        Assert.True(tpe.SetSearchProperties(null, null, Objectives.BraninSpace()));
        var e = Assert.Throws<InvalidOperationException>(() => tpe.Suggest("t0"));
        Assert.Contains("needs a metric and a mode", e.Message);
    }

    [Fact]
    public void Bad_options_fail_at_construction_naming_the_option()
    {
        Assert.Contains("TpeOptions.EiCandidates", Assert.Throws<ArgumentOutOfRangeException>(() => new TpeSearcher(options: new TpeOptions { EiCandidates = 0 })).Message);
        Assert.Contains("TpeOptions.PriorWeight", Assert.Throws<ArgumentOutOfRangeException>(() => new TpeSearcher(options: new TpeOptions { PriorWeight = -1 })).Message);
    }

    [Fact]
    public void It_runs_under_the_controller_through_a_search_generator()
    {
        using var h = new Support.Harness(cpus: 2, search: new SearchGenerator(
            new TpeSearcher(options: new TpeOptions { Seed = 2, StartupTrials = 3 }),
            new SearchSpace { ["value"] = Domain.Uniform(0, 1) },
            new TrialTemplate { TrainableName = "__fake", Stop = Stop.AfterIterations(1) },
            numSamples: 6,
            new SearchGeneratorOptions { Metric = "episode_reward_mean", Mode = MetricMode.Max }));
        h.RunToEnd();
        Assert.Equal(6, h.Trials.Count);
        Assert.All(h.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        var tpe = (TpeSearcher)((SearchGenerator)h.Controller.Search).Searcher;
        Assert.Equal(6, tpe.ObservationCount);
    }

    private static (double Tpe, double Random) Compare(Func<SearchSpace> space, Func<TrialConfig, double> objective, TpeOptions? options = null)
    {
        var tpe = new List<double>();
        var random = new List<double>();
        for (int seed = 0; seed < Seeds; seed++)
        {
            tpe.Add(SearchDriver.Run(new TpeSearcher(options: (options ?? new TpeOptions()) with { Seed = seed }), space(), objective, Evaluations).BestValue);
            random.Add(SearchDriver.Run(new RandomSearcher(seed: seed), space(), objective, Evaluations).BestValue);
        }
        return (Median(tpe), Median(random));
    }
}
