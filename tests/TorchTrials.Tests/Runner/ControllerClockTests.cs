using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>
/// Everything the controller and the Tuner time runs on the one <see cref="TimeProvider"/> they are given, so a test moves
/// time by hand: no sleeps, and exact numbers.
/// </summary>
public class ControllerClockTests
{
    private static readonly DateTimeOffset Start = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);

    /// <summary>A training function whose every iteration takes <paramref name="seconds"/> on <paramref name="clock"/>.</summary>
    private static TrainableRegistry Taking(ManualClock clock, double seconds) =>
        TrainableRegistry.CreateDefault().RegisterFunction("timed", (config, context) => Iterations(clock, seconds));

    private static IEnumerable<Metrics> Iterations(ManualClock clock, double seconds)
    {
        for (int i = 0; ; i++)
        {
            clock.Advance(seconds);
            yield return new Metrics { { "i", i } };
        }
    }

    private sealed class ResultRecorder : ITrialCallback
    {
        public List<TrialResult> Results { get; } = new();

        public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result) => Results.Add(result);
    }

    [Fact]
    public void Results_are_timed_and_stamped_on_the_controllers_clock()
    {
        // Given iterations that take 2.5 s each on a clock that starts at 03:04:05,
        var clock = new ManualClock(Start);
        var recorder = new ResultRecorder();
        using var h = new Harness(cpus: 1, registry: Taking(clock, 2.5), callbacks: new[] { recorder }, clock: clock);
        var trial = new Trial("timed", stop: Stop.AfterIterations(3));
        h.Add(trial);

        // when the trial runs three iterations,
        h.RunToEnd();

        // then each took exactly 2.5 s, the totals add up, and the stamps are the clock's: 2.5 s, 5 s, 7.5 s after the start.
        Assert.Equal(new[] { 2.5, 2.5, 2.5 }, recorder.Results.Select(r => r.TimeThisIterS));
        Assert.Equal(new[] { 2.5, 5.0, 7.5 }, recorder.Results.Select(r => r.TimeTotalS));
        Assert.Equal(new[] { 2L, 5L, 7L }, recorder.Results.Select(r => r.Timestamp - Start.ToUnixTimeSeconds()));
        Assert.Equal(Start, trial.StartTime);
        Assert.Equal(7.5, h.Controller.ElapsedSeconds);
    }

    [Fact]
    public void A_timeout_stopper_on_the_run_clock_ends_the_experiment_after_its_budget_without_waiting()
    {
        // Given a 10 s budget and iterations of 3 s each (the budget starts at the stopper's first check, after the start),
        var clock = new ManualClock(Start);
        using var h = new Harness(cpus: 1, registry: Taking(clock, 3), stopper: new TimeoutStopper(TimeSpan.FromSeconds(10), clock), clock: clock);
        var trial = new Trial("timed", stop: Stop.AfterIterations(1000));
        h.Add(trial);

        h.RunToEnd();

        // then the fourth iteration (12 s >= 10 s) is the last one: the timeout stopped the trial there.
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.Equal(nameof(TimeoutStopper), trial.StoppedBy);
        Assert.Equal(4, trial.LastResult!.TrainingIteration);
    }

    [Fact]
    public void Queued_store_writes_wait_for_the_flush_interval_on_the_controllers_clock()
    {
        // Given a store whose writes are committed every 500 ms (the default) and a clock that stands still,
        var clock = new ManualClock(Start);
        using var h = new Harness(cpus: 1, registry: Taking(clock, 0), sqlite: true, clock: clock);
        h.Add(new Trial("timed", stop: Stop.AfterIterations(1000)));

        // when steps run, their writes stay queued;
        for (int i = 0; i < 5; i++) h.Controller.Step();
        Assert.True(h.Store.PendingWrites > 0);

        // once 500 ms have passed, the next step commits them.
        clock.Advance(TimeSpan.FromMilliseconds(499));
        h.Controller.Step();
        Assert.True(h.Store.PendingWrites > 0);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        h.Controller.Step();
        Assert.Equal(0, h.Store.PendingWrites);
    }

    [Fact]
    public void Each_failure_in_error_txt_is_stamped_with_the_controllers_clock()
    {
        var clock = new ManualClock(Start);
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("fails", (config, context) => Fails(clock));
        using var h = new Harness(cpus: 1, registry: registry, clock: clock);
        var trial = new Trial("fails");
        h.Add(trial);

        h.RunToEnd();

        Assert.Equal(TrialStatus.Error, trial.Status);
        var text = File.ReadAllText(trial.ErrorFile!);
        // Started at 03:04:05, failed 61 s later.
        Assert.StartsWith("Failure # 1 (occurred at 2030-01-02_03-05-06)", text);
    }

    private static IEnumerable<Metrics> Fails(ManualClock clock)
    {
        clock.Advance(61);
        if (clock.GetTimestamp() > 0) throw new InvalidOperationException("boom");
        yield break;
    }

    [Fact]
    public void Progress_snapshots_are_published_once_per_interval_of_the_run_clock()
    {
        // Given a publisher with a 250 ms interval on a clock that stands still,
        var clock = new ManualClock(Start);
        var published = new List<ExperimentSnapshot>();
        var publisher = new SnapshotPublisher("x", new DeviceSlotAllocator(DeviceInventory.Simulated(1)), null, null,
            TimeSpan.FromMilliseconds(250), published.Add, clock);
        var trials = Array.Empty<Trial>();

        // when steps end, only the first publishes until 250 ms have passed;
        for (int i = 0; i < 3; i++) publisher.OnStepEnd(i, trials);
        Assert.Single(published);
        clock.Advance(TimeSpan.FromMilliseconds(249));
        publisher.OnStepEnd(3, trials);
        Assert.Single(published);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        publisher.OnStepEnd(4, trials);

        // then the second snapshot says 250 ms have elapsed.
        Assert.Equal(2, published.Count);
        Assert.Equal(TimeSpan.FromMilliseconds(250), published[1].Elapsed);
    }

    [Fact]
    public void A_tuner_without_a_name_names_the_experiment_after_its_clocks_local_time()
    {
        using var dir = new TempDir();
        var tuner = new Tuner("noop", runConfig: new RunConfig { StoragePath = dir.Path, TimeProvider = new ManualClock(Start) });
        Assert.Equal("noop_2030-01-02_03-04-05", Path.GetFileName(tuner.ExperimentPath));
    }

    [Fact]
    public void A_tuner_hands_its_run_clock_to_the_controller_and_the_trials()
    {
        // Given a Tuner whose RunConfig carries a clock, and iterations of 2 s on it,
        using var dir = new TempDir();
        var clock = new ManualClock(Start);
        var tuner = new Tuner((config, context) => Iterations(clock, 2), runConfig: new RunConfig
        {
            StoragePath = dir.Path,
            Executor = ExecutorKind.Inline,
            Inventory = DeviceInventory.Simulated(1),
            Stop = Stop.AfterIterations(3),
            Loggers = TrialFileOptions.None,
            Quiet = true,
            TimeProvider = clock,
        });

        // when it fits, the trial's three iterations took 6 s and it started at the clock's start.
        var grid = tuner.Fit();
        Assert.Equal(6.0, grid[0].LastResult!.TimeTotalS);
        Assert.Equal(Start.ToUnixTimeSeconds() + 6, grid[0].LastResult!.Timestamp);
    }
}
