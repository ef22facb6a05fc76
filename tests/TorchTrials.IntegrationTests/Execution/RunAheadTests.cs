using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Trainables;

namespace TorchTrials.IntegrationTests.Execution;

/// <summary>
/// Trials run ahead of the controller only where nothing the controller could decide depends on their results: the trial
/// thread keeps training while the controller is still busy with an earlier result, and every result is still recorded
/// once, in order.
/// </summary>
public class RunAheadTests
{
    private const int Iterations = 8;

    [Fact]
    public void Under_fifo_with_an_iteration_cap_a_trial_trains_on_while_the_controller_handles_its_first_result()
    {
        var run = Run(runAhead: true, stop: null, scheduler: null, stopper: null);
        Assert.True(run.StepsWhileFirstResultHeld >= 3, $"the trial waited for the controller: {run.StepsWhileFirstResultHeld} steps while it held result 1");
        Assert.Equal(Enumerable.Range(1, Iterations).Select(i => (long)i), run.Iterations);
    }

    [Theory]
    [InlineData("run_ahead off")]
    [InlineData("metric stop criterion")]
    [InlineData("stopper")]
    [InlineData("scheduler that decides per result")]
    public void Otherwise_each_step_waits_for_the_decision_on_the_previous_result(string reason)
    {
        var run = reason switch
        {
            "run_ahead off" => Run(runAhead: false, stop: null, scheduler: null, stopper: null),
            "metric stop criterion" => Run(runAhead: true, stop: ("score", 1e9), scheduler: null, stopper: null),
            "stopper" => Run(runAhead: true, stop: null, scheduler: null, stopper: new MaximumIterationStopper(1000)),
            _ => Run(runAhead: true, stop: null, scheduler: new MedianStoppingRule(new MedianStoppingOptions { Metric = "score", Mode = MetricMode.Max, GracePeriod = 1000 }), stopper: null),
        };
        Assert.Equal(1, run.StepsWhileFirstResultHeld);
        Assert.Equal(Enumerable.Range(1, Iterations).Select(i => (long)i), run.Iterations);
    }

    private static Outcome Run(bool runAhead, (string Key, double Value)? stop, ITrialScheduler? scheduler, IStopper? stopper)
    {
        int steps = 0;
        IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
        {
            while (true)
            {
                Interlocked.Increment(ref steps);
                yield return new Metrics { { "score", 1.0 } };
            }
        }

        var holder = new FirstResultHolder(() => Volatile.Read(ref steps));
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-it", Guid.NewGuid().ToString("N")[..12]);
        var stopCriteria = new Dictionary<string, double> { [TrialResult.TrainingIterationKey] = Iterations };
        if (stop is { } s) stopCriteria[s.Key] = s.Value;
        var tuner = new Tuner(Train, new SearchSpace(),
            new TuneConfig { NumSamples = 1, RunAhead = runAhead, Scheduler = scheduler },
            new RunConfig
            {
                StoragePath = dir,
                Stop = stopCriteria,
                Stopper = stopper,
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(2),
                Loggers = TrialFileOptions.None,
                Callbacks = new[] { holder },
            });
        tuner.Fit();
        try { Directory.Delete(dir, true); } catch (IOException) { }
        return new Outcome(holder.StepsWhileHeld, holder.Iterations);
    }

    private sealed record Outcome(int StepsWhileFirstResultHeld, IReadOnlyList<long> Iterations);

    /// <summary>
    /// Holds the controller on the first result until the trial has taken three more steps or half a second passed, and
    /// records how many steps the trial had taken by then.
    /// </summary>
    private sealed class FirstResultHolder(Func<int> steps) : ITrialCallback
    {
        public int StepsWhileHeld { get; private set; }

        public List<long> Iterations { get; } = new();

        public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result)
        {
            Iterations.Add(result.TrainingIteration);
            if (result.TrainingIteration != 1) return;
            var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(500);
            while (steps() < 4 && DateTime.UtcNow < deadline) Thread.Sleep(1);
            StepsWhileHeld = steps();
        }
    }
}
