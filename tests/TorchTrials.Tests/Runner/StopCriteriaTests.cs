using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>Issue 11, item 4: typed stopping criteria instead of a dictionary keyed by "training_iteration".</summary>
public class StopCriteriaTests
{
    /// <summary>accuracy = rate * iteration, so rate 0.25 reaches 0.9 at iteration 4 and rate 0.05 never does in 10.</summary>
    private static IEnumerable<Metrics> Climb(TrialConfig config, FunctionContext context)
    {
        double rate = config.GetDouble("rate");
        for (int i = 1; ; i++)
            yield return new Metrics { { "accuracy", rate * i } };
    }

    private static ResultGrid Sweep(string storage, IReadOnlyDictionary<string, double> stop) =>
        new Tuner(Climb,
            new SearchSpace { ["rate"] = Domain.Grid(0.05, 0.25) },
            new TuneConfig { Metric = "accuracy", Mode = MetricMode.Max },
            new RunConfig { StoragePath = storage, Stop = stop, Inventory = DeviceInventory.Simulated(1), Executor = ExecutorKind.Inline, Quiet = true }).Fit();

    private static long IterationsOf(ResultGrid grid, double rate) =>
        grid.Single(t => t.Config.GetDouble("rate") == rate).LastResult!.TrainingIteration;

    [Fact]
    public void After_iterations_stops_every_trial_at_that_iteration_as_the_dictionary_form_does()
    {
        using var temp = new TempDir();

        // When one sweep stops with Stop.AfterIterations(3) and another with Ray's dictionary form
        var typed = Sweep(Path.Combine(temp.Path, "typed"), Stop.AfterIterations(3));
        var plain = Sweep(Path.Combine(temp.Path, "plain"), new Dictionary<string, double> { ["training_iteration"] = 3 });

        // Then both trials of both sweeps ran exactly 3 iterations
        Assert.All(typed.Concat(plain), t => Assert.Equal(3, t.LastResult!.TrainingIteration));
        Assert.Equal(2, typed.Count);
        Assert.Equal(2, plain.Count);
    }

    [Fact]
    public void Or_stops_a_trial_at_whichever_criterion_it_meets_first()
    {
        using var temp = new TempDir();

        // When trials stop after 10 iterations or once accuracy reaches 0.9
        var grid = Sweep(temp.Path, Stop.AfterIterations(10).Or(Stop.WhenAtLeast("accuracy", 0.9)));

        // Then rate 0.25 stops at iteration 4 (accuracy 1.0 >= 0.9; 0.75 at 3 is not) and rate 0.05 runs all 10
        Assert.Equal(4, IterationsOf(grid, 0.25));
        Assert.Equal(10, IterationsOf(grid, 0.05));
    }

    [Fact]
    public void Criteria_read_as_the_dictionary_Ray_takes_and_print_as_their_rule()
    {
        var stop = Stop.AfterIterations(30).Or(Stop.AfterSeconds(60)).Or(Stop.WhenAtLeast("val_accuracy", 0.98));

        Assert.Equal(new Dictionary<string, double> { ["training_iteration"] = 30, ["time_total_s"] = 60, ["val_accuracy"] = 0.98 },
            stop.ToDictionary(kv => kv.Key, kv => kv.Value));
        Assert.Equal("time_total_s >= 60 or training_iteration >= 30 or val_accuracy >= 0.98", stop.ToString());
    }

    [Fact]
    public void Bad_criteria_fail_at_construction_naming_the_value()
    {
        Assert.Contains("at least 1, got 0", Assert.Throws<ArgumentOutOfRangeException>(() => Stop.AfterIterations(0)).Message);
        Assert.Contains("greater than 0, got -1", Assert.Throws<ArgumentOutOfRangeException>(() => Stop.AfterSeconds(-1)).Message);
        Assert.Contains("'loss' must be a number, got NaN", Assert.Throws<ArgumentOutOfRangeException>(() => Stop.WhenAtLeast("loss", double.NaN)).Message);
        Assert.Contains("'training_iteration' is given twice",
            Assert.Throws<ArgumentException>(() => Stop.AfterIterations(3).Or(Stop.AfterIterations(5))).Message);
    }
}
