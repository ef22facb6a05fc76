using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using static TorchTrials.Tests.Search.SearchTestKit;

namespace TorchTrials.Tests.Search.Variants;

/// <summary>Ray's BasicVariantGenerator: grid × num_samples, random values per variant, seeded, resumable.</summary>
public class BasicVariantGeneratorTests
{
    private static SearchSpace GridAndRandom() => new()
    {
        ["x"] = Domain.Grid(10, 20),
        ["y"] = Domain.Grid("a", "b", "c"),
        ["lr"] = Domain.LogUniform(1e-4, 1e-1),
        ["n"] = Domain.RandInt(0, 3),
        ["epochs"] = 5,
    };

    [Fact]
    public void Grid_times_num_samples_trials_each_grid_combination_once_per_sample()
    {
        var generator = new BasicVariantGenerator(GridAndRandom(), Template(), numSamples: 4, new BasicVariantOptions { Seed = 1 });
        Assert.Equal(24, generator.TotalSamples);

        var trials = Drain(generator);

        Assert.Equal(24, trials.Count);
        Assert.True(generator.IsFinished);
        var combos = trials.GroupBy(t => (t.Config["x"], t.Config["y"])).ToList();
        Assert.Equal(6, combos.Count);
        Assert.All(combos, g => Assert.Equal(4, g.Count()));
        Assert.All(trials, t => Assert.Equal(5L, t.Config["epochs"]));
    }

    [Fact]
    public void Grid_order_is_Rays_sorted_keys_with_the_first_varying_fastest()
    {
        var trials = Drain(new BasicVariantGenerator(GridAndRandom(), Template(), 1, new BasicVariantOptions { Seed = 1 }));
        var order = trials.Select(t => $"{t.Config["x"]}{t.Config["y"]}").ToArray();
        Assert.Equal(new[] { "10a", "20a", "10b", "20b", "10c", "20c" }, order);
    }

    [Fact]
    public void Ids_tags_and_evaluated_params_describe_each_variant()
    {
        var generator = new BasicVariantGenerator(GridAndRandom(), Template(TrialConfig.From(("seed", 3L))), 1,
            new BasicVariantOptions { Seed = 1, TrialIdPrefix = "abcde" });
        var trials = Drain(generator);
        Assert.Equal("abcde_00000", trials[0].Id);
        Assert.Equal("abcde_00005", trials[5].Id);
        var first = trials[0];
        Assert.Equal(new[] { "lr", "n", "x", "y" }, first.EvaluatedParams.Keys.Order());
        Assert.StartsWith("0_lr=", first.ExperimentTag);
        Assert.EndsWith($",n={first.Config["n"]},x=10,y=a", first.ExperimentTag);
        Assert.Equal(3L, first.Config["seed"]);
    }

    [Fact]
    public void Random_values_stay_within_their_domains_and_vary_between_variants()
    {
        var trials = Drain(new BasicVariantGenerator(GridAndRandom(), Template(), 20, new BasicVariantOptions { Seed = 5 }));
        Assert.All(trials, t =>
        {
            Assert.InRange((double)t.Config["lr"]!, 1e-4, 1e-1);
            Assert.InRange((long)t.Config["n"]!, 0, 2);
        });
        Assert.Equal(trials.Count, trials.Select(t => t.Config["lr"]).Distinct().Count());
        Assert.Equal(3, trials.Select(t => t.Config["n"]).Distinct().Count());
    }

    [Fact]
    public void The_same_seed_gives_the_same_configs_under_disjoint_ids_and_another_seed_other_configs()
    {
        // Given generators of one space (three experiments of one spec), two with seed 42 and one with seed 43
        List<Trial> Run(long seed) => Drain(new BasicVariantGenerator(GridAndRandom(), Template(), 3, new BasicVariantOptions { Seed = seed }));
        var (a, b, other) = (Run(42), Run(42), Run(43));

        // Then one seed gives the same configs in the same order, another seed other ones, and no two share a trial id
        Assert.Equal(a.Select(t => t.Config), b.Select(t => t.Config));
        Assert.NotEqual(a.Select(t => t.Config), other.Select(t => t.Config));
        Assert.Empty(a.Select(t => t.Id).Intersect(b.Select(t => t.Id)));
        Assert.Empty(a.Concat(b).Select(t => t.Id).Intersect(other.Select(t => t.Id)));
    }

    [Fact]
    public void Constant_grid_search_keeps_the_random_values_across_a_samples_grid()
    {
        var trials = Drain(new BasicVariantGenerator(GridAndRandom(), Template(), 2, new BasicVariantOptions { Seed = 3, ConstantGridSearch = true }));
        Assert.Single(trials.Take(6).Select(t => t.Config["lr"]).Distinct());
        Assert.Single(trials.Skip(6).Select(t => t.Config["lr"]).Distinct());
        Assert.NotEqual(trials[0].Config["lr"], trials[6].Config["lr"]);
    }

    [Fact]
    public void Points_to_evaluate_come_first_and_each_replaces_one_sample()
    {
        var space = new SearchSpace { ["a"] = Domain.Grid(1, 2), ["b"] = Domain.RandInt(0, 3) };
        var points = new[] { TrialConfig.From(("a", 2), ("b", 2)), TrialConfig.From(("a", 1)), TrialConfig.From(("b", 2)) };
        var generator = new BasicVariantGenerator(space, Template(), 4, new BasicVariantOptions { Seed = 9, PointsToEvaluate = points });
        Assert.Equal(6, generator.TotalSamples);

        var trials = Drain(generator);

        Assert.Equal(6, trials.Count);
        Assert.Equal((2L, 2L), ((long)trials[0].Config["a"]!, (long)trials[0].Config["b"]!));
        Assert.Equal(1L, trials[1].Config["a"]);
        Assert.Equal(new object?[] { 1L, 2L }, new[] { trials[2].Config["a"], trials[3].Config["a"] });
        Assert.All(trials.Skip(2).Take(2), t => Assert.Equal(2L, t.Config["b"]));
        Assert.Equal(new object?[] { 1L, 2L }, new[] { trials[4].Config["a"], trials[5].Config["a"] });
    }

    [Fact]
    public void A_point_with_a_key_outside_the_space_is_refused_naming_it()
    {
        var e = Assert.Throws<ArgumentException>(() => new BasicVariantGenerator(GridAndRandom(), Template(), 1,
            new BasicVariantOptions { PointsToEvaluate = new[] { TrialConfig.From(("lrr", 0.1)) } }));
        Assert.Contains("'lrr'", e.Message);
    }

    [Fact]
    public void Max_concurrent_holds_back_trials_until_one_finishes()
    {
        var generator = new BasicVariantGenerator(GridAndRandom(), Template(), 1, new BasicVariantOptions { Seed = 1, MaxConcurrent = 2 });
        var a = generator.NextTrial()!;
        var b = generator.NextTrial()!;
        Assert.Null(generator.NextTrial());
        Assert.False(generator.IsFinished);
        generator.OnTrialComplete(a.Id, null, TrialOutcome.Completed);
        Assert.NotNull(generator.NextTrial());
        Assert.Null(generator.NextTrial());
        Assert.NotEqual(a.Id, b.Id);
    }

    [Fact]
    public void Resume_from_saved_state_produces_only_the_remaining_trials_under_the_same_prefix()
    {
        // Given a generator that produced 7 of its 18 trials and saved its state
        var options = new BasicVariantOptions { Seed = 11 };
        var all = Drain(new BasicVariantGenerator(GridAndRandom(), Template(), 3, options)).Select(t => t.Config).ToList();
        var first = new BasicVariantGenerator(GridAndRandom(), Template(), 3, options);
        var before = Enumerable.Range(0, 7).Select(_ => first.NextTrial()!).ToList();
        var state = first.SaveState()!;

        // When a fresh generator restores that state
        var resumed = new BasicVariantGenerator(GridAndRandom(), Template(), 3, new BasicVariantOptions());
        resumed.RestoreState(System.Text.Json.Nodes.JsonNode.Parse(state.ToJsonString())!);
        var after = Drain(resumed);

        // Then it produces exactly the remaining 11 configs, and their ids continue the first generator's prefix and count
        Assert.Equal(all, before.Concat(after).Select(t => t.Config));
        Assert.Equal(11, after.Count);
        string prefix = before[0].Id[..before[0].Id.LastIndexOf('_')];
        Assert.Equal(Enumerable.Range(0, 18).Select(i => TrialIds.Format(prefix, i)), before.Concat(after).Select(t => t.Id));
    }

    [Fact]
    public void Sample_from_values_are_resolved_per_variant()
    {
        var space = new SearchSpace { ["width"] = Domain.Grid(32, 64), ["double"] = Domain.SampleFrom("width * 2") };
        var trials = Drain(new BasicVariantGenerator(space, Template(), 1, new BasicVariantOptions { Seed = 1 }));
        Assert.Equal(new object?[] { 64L, 128L }, trials.Select(t => t.Config["double"]));
    }

    [Fact]
    public void Set_finished_stops_production()
    {
        var generator = new BasicVariantGenerator(GridAndRandom(), Template(), 2, new BasicVariantOptions { Seed = 1 });
        generator.NextTrial();
        generator.SetFinished();
        Assert.True(generator.IsFinished);
        Assert.Null(generator.NextTrial());
    }
}
