using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Search.ObjectiveFunctions;

/// <summary>The benchmark functions have their published minima, and the driver reports the best value it saw.</summary>
public class ObjectivesTests
{
    [Fact]
    public void Branin_reaches_its_minimum_at_its_three_minimisers()
    {
        Assert.Equal(Objectives.BraninMinimum, Objectives.Branin(-Math.PI, 12.275), 9);
        Assert.Equal(Objectives.BraninMinimum, Objectives.Branin(Math.PI, 2.275), 9);
        Assert.Equal(Objectives.BraninMinimum, Objectives.Branin(9.42478, 2.475), 6);
        Assert.Equal(0.397887, Objectives.BraninMinimum, 6);
    }

    [Fact]
    public void Hartmann6_reaches_its_minimum_at_its_minimiser()
    {
        var x = new[] { 0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573 };
        Assert.Equal(-3.32237, Objectives.Hartmann6(x), 5);
        Assert.True(Objectives.Hartmann6(new double[6]) > -3.32237);
    }

    [Fact]
    public void The_easy_objective_is_Rays()
    {
        Assert.Equal(10.0 + 5.0, Objectives.EasyObjective(0, 3, 50), 12);
        Assert.Equal(1 / (0.1 + 10 * 99 / 100.0) - 1, Objectives.EasyObjective(TrialConfig.From(("width", 10.0), ("height", -10.0))), 12);
    }

    [Fact]
    public void The_driver_runs_the_given_number_of_evaluations_and_keeps_the_best()
    {
        var run = SearchDriver.Run(new RandomSearcher(seed: 1), Objectives.EasySpace(), Objectives.EasyObjective, 25, "mean_loss");
        Assert.Equal(25, run.History.Count);
        Assert.Equal(run.History.Min(h => h.Value), run.BestValue);
        Assert.Equal(run.BestValue, Objectives.EasyObjective(run.BestConfig!));
        var max = SearchDriver.Run(new RandomSearcher(seed: 1), Objectives.EasySpace(), Objectives.EasyObjective, 25, "mean_loss", MetricMode.Max);
        Assert.Equal(max.History.Max(h => h.Value), max.BestValue);
    }
}
