using TorchTrials.Runner;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Stoppers;

public class StopperTests
{
    [Fact]
    public void MaximumIterationStopper_counts_results_per_trial()
    {
        var stopper = new MaximumIterationStopper(3);
        Assert.False(stopper.ShouldStopTrial("a", Results.At(1, 0)));
        Assert.False(stopper.ShouldStopTrial("a", Results.At(2, 0)));
        Assert.False(stopper.ShouldStopTrial("b", Results.At(1, 0)));
        // The third result of a, whatever its training_iteration says.
        Assert.True(stopper.ShouldStopTrial("a", Results.At(50, 0)));
        Assert.False(stopper.ShouldStopAll());
        Assert.Contains("MaximumIterationStopper.maxIter", Assert.Throws<OptionException>(() => new MaximumIterationStopper(0)).Message);
    }

    [Fact]
    public void TrialPlateauStopper_stops_when_the_last_results_barely_move()
    {
        // num_results 3, grace 3, std 0.01. Values 1, 2, 2.001, 2.002: window [2, 2.001, 2.002] has std 0.00082 < 0.01.
        var stopper = new TrialPlateauStopper("score", std: 0.01, numResults: 3, gracePeriod: 3);
        Assert.False(stopper.ShouldStopTrial("a", Results.At(1, 1)));
        Assert.False(stopper.ShouldStopTrial("a", Results.At(2, 2)));
        // Window [1, 2, 2.001]: std 0.47.
        Assert.False(stopper.ShouldStopTrial("a", Results.At(3, 2.001)));
        Assert.True(stopper.ShouldStopTrial("a", Results.At(4, 2.002)));
    }

    [Fact]
    public void TrialPlateauStopper_respects_grace_and_the_metric_threshold()
    {
        // grace 4 > num_results 2: flat values from the start only stop at the 4th result.
        var graceful = new TrialPlateauStopper("score", numResults: 2, gracePeriod: 4);
        Assert.False(graceful.ShouldStopTrial("a", Results.At(1, 5)));
        Assert.False(graceful.ShouldStopTrial("a", Results.At(2, 5)));
        Assert.False(graceful.ShouldStopTrial("a", Results.At(3, 5)));
        Assert.True(graceful.ShouldStopTrial("a", Results.At(4, 5)));

        // Max mode with threshold 10: a plateau at 5 is not good enough to stop; one at 12 is.
        var threshold = new TrialPlateauStopper("score", numResults: 2, gracePeriod: 0, metricThreshold: 10, mode: MetricMode.Max);
        Assert.False(threshold.ShouldStopTrial("a", Results.At(1, 5)));
        Assert.False(threshold.ShouldStopTrial("a", Results.At(2, 5)));
        Assert.False(threshold.ShouldStopTrial("b", Results.At(1, 12)));
        Assert.True(threshold.ShouldStopTrial("b", Results.At(2, 12)));

        // Min mode: must be at most the threshold.
        var min = new TrialPlateauStopper("loss", numResults: 2, gracePeriod: 0, metricThreshold: 0.5, mode: MetricMode.Min);
        Assert.False(min.ShouldStopTrial("a", Results.At(1, 0.7, "loss")));
        Assert.False(min.ShouldStopTrial("a", Results.At(2, 0.7, "loss")));
        Assert.False(min.ShouldStopTrial("b", Results.At(1, 0.1, "loss")));
        Assert.True(min.ShouldStopTrial("b", Results.At(2, 0.1, "loss")));

        Assert.Contains("TrialPlateauStopper.mode", Assert.Throws<OptionException>(() => new TrialPlateauStopper("score", metricThreshold: 1)).Message);
    }

    [Fact]
    public void TrialPlateauStopper_never_stops_on_a_missing_metric()
    {
        var stopper = new TrialPlateauStopper("score", numResults: 2, gracePeriod: 0);
        Assert.False(stopper.ShouldStopTrial("a", Results.At(1, 1, metric: "other")));
        Assert.False(stopper.ShouldStopTrial("a", Results.At(2, 1, metric: "other")));
    }

    [Fact]
    public void ExperimentPlateauStopper_stops_everything_after_patience_plateaued_results()
    {
        // top 3, std 0.01, max mode, patience 1. Results 1, 5, 5, 5: after the 4th the top is [5, 5, 5] (std 0): plateaued
        // once, counter 1 >= patience 1 -> stop. After the 3rd the top [1, 5, 5] has std 1.9: not plateaued.
        var stopper = new ExperimentPlateauStopper("score", std: 0.01, top: 3, mode: MetricMode.Max, patience: 1);
        Assert.False(stopper.ShouldStopTrial("a", Results.At(1, 1)));
        Assert.False(stopper.ShouldStopTrial("b", Results.At(1, 5)));
        Assert.False(stopper.ShouldStopTrial("c", Results.At(1, 5)));
        Assert.False(stopper.ShouldStopAll());
        Assert.True(stopper.ShouldStopTrial("a", Results.At(2, 5)));
        Assert.True(stopper.ShouldStopAll());
        Assert.Equal(new[] { 5.0, 5, 5 }, stopper.TopValues);
    }

    [Fact]
    public void ExperimentPlateauStopper_patience_counts_consecutive_plateaued_results_and_resets()
    {
        // patience 2, min mode, top 2: values 3, 3 -> plateau (count 1, not yet); 1 -> top [1, 3] std 1, reset to 0;
        // 1 -> [1, 1] count 1; 1 -> count 2 -> stop.
        var stopper = new ExperimentPlateauStopper("loss", std: 0.01, top: 2, mode: MetricMode.Min, patience: 2);
        Assert.False(stopper.ShouldStopTrial("a", Results.At(1, 3, "loss")));
        Assert.False(stopper.ShouldStopTrial("a", Results.At(2, 3, "loss")));
        Assert.False(stopper.ShouldStopTrial("a", Results.At(3, 1, "loss")));
        Assert.False(stopper.ShouldStopTrial("a", Results.At(4, 1, "loss")));
        Assert.True(stopper.ShouldStopTrial("a", Results.At(5, 1, "loss")));
    }

    [Fact]
    public void ExperimentPlateauStopper_validates_like_ray()
    {
        Assert.Contains("ExperimentPlateauStopper.top", Assert.Throws<OptionException>(() => new ExperimentPlateauStopper("m", top: 1)).Message);
        Assert.Contains("ExperimentPlateauStopper.std", Assert.Throws<OptionException>(() => new ExperimentPlateauStopper("m", std: 0)).Message);
        Assert.Contains("ExperimentPlateauStopper.patience", Assert.Throws<OptionException>(() => new ExperimentPlateauStopper("m", patience: -1)).Message);
    }

    [Fact]
    public void TimeoutStopper_budget_starts_at_the_first_check()
    {
        var clock = new ManualClock();
        var stopper = new TimeoutStopper(TimeSpan.FromSeconds(10), clock);
        clock.Advance(100); // setup before the loop does not count
        Assert.False(stopper.ShouldStopAll());
        clock.Advance(6);
        Assert.False(stopper.ShouldStopAll());
        Assert.False(stopper.ShouldStopTrial("a", Results.At(1, 0)));
        clock.Advance(4);
        Assert.True(stopper.ShouldStopAll());
        Assert.Contains("TimeoutStopper.timeout", Assert.Throws<OptionException>(() => new TimeoutStopper(TimeSpan.Zero)).Message);
    }

    [Fact]
    public void CombinedStopper_is_an_or_that_short_circuits_like_rays_any()
    {
        var counter = new MaximumIterationStopper(2);
        var always = new FunctionStopper((_, _) => true);
        var combined = new CombinedStopper(always, counter);
        Assert.True(combined.ShouldStopTrial("a", Results.At(1, 0)));
        Assert.True(combined.ShouldStopTrial("a", Results.At(2, 0)));
        // The counter never saw a result: it stops "a" only at its own second one.
        Assert.False(counter.ShouldStopTrial("a", Results.At(3, 0)));

        var clock = new ManualClock();
        var both = new CombinedStopper(new FunctionStopper((id, r) => r.GetDouble("score") > 5), new TimeoutStopper(TimeSpan.FromSeconds(1), clock));
        Assert.False(both.ShouldStopTrial("a", Results.At(1, 1)));
        Assert.True(both.ShouldStopTrial("a", Results.At(1, 6)));
        Assert.False(both.ShouldStopAll());
        clock.Advance(2);
        Assert.True(both.ShouldStopAll());
    }

    [Fact]
    public void Stoppers_end_trials_and_experiments_through_the_controller()
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.SaturatingCurve);
        var stopper = new CombinedStopper(new MaximumIterationStopper(7), new TrialPlateauStopper("score", std: 0.05, numResults: 3, gracePeriod: 3));
        using var h = new Harness(cpus: 2, registry: registry, stopper: stopper);
        // q = 0.1 flattens early (differences 0.1 * e^(-t/4) / 4); q = 10 keeps moving until the iteration cap.
        var flat = new Trial("curve", TrialConfig.From(("q", 0.1)));
        var steep = new Trial("curve", TrialConfig.From(("q", 10.0)));
        h.Add(flat, steep);

        h.RunToEnd();

        Assert.Equal(3, flat.LastResult!.TrainingIteration);
        Assert.Equal(7, steep.LastResult!.TrainingIteration);
        Assert.All(h.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
    }
}
