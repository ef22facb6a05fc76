using System.Diagnostics;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using Xunit.Abstractions;

namespace TorchTrials.IntegrationTests.Execution;

public class ConcurrentExecutorTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-it", Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static StopCriteria StopAt(int n) => Stop.AfterIterations(n);

    private TrialController Controller(int cpus, TrainableRegistry registry, IEnumerable<Trial> trials, int buffer = 1, bool sqlite = true,
        CancellationToken cancel = default, IEnumerable<ITrialCallback>? callbacks = null, TimeSpan? eventWait = null)
    {
        var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(cpus));
        var executor = new ConcurrentTrialExecutor(allocator, registry, new ExecutorOptions { SpillDirectory = Path.Combine(_dir, "spill") });
        IExperimentStore store = sqlite ? SqliteExperimentStore.Open(_dir) : new NullExperimentStore(_dir);
        var options = new ControllerOptions { ExperimentDirectory = _dir, ResultBufferLength = buffer, MaxPendingTrials = 1000 };
        if (eventWait is { } wait) options = options with { EventWait = wait };
        return new TrialController(executor, registry, new TrialListSearch(trials), callbacks: callbacks, store: store, options: options);
    }

    [Fact]
    public void A_freed_slot_starts_the_next_trial_without_waiting_for_another_trial_to_report()
    {
        // t0 ends at once; t1 blocks in its first step until t2 has started (or 10 s pass). t2 can only start on the slot
        // t0 freed, so it must start while t1 is still blocked: the freed slot has to wake the controller by itself.
        using var release = new ManualResetEventSlim();
        var registry = TrainableRegistry.CreateDefault()
            .RegisterFunction("quick", (config, context) => new[] { new Metrics { { "score", 1.0 } } })
            .RegisterFunction("blocker", Blocker);
        IEnumerable<Metrics> Blocker(TrialConfig config, FunctionContext context)
        {
            release.Wait(TimeSpan.FromSeconds(10));
            yield return new Metrics { { "score", 2.0 } };
        }

        var watch = new StartWatch(release);
        var trials = new[]
        {
            new Trial("quick", trialId: "t0", resources: new Resources(cpu: 1)),
            new Trial("blocker", trialId: "t1", resources: new Resources(cpu: 1)),
            new Trial("quick", trialId: "t2", resources: new Resources(cpu: 1)),
        };
        using var controller = Controller(2, registry, trials, callbacks: new[] { watch }, eventWait: TimeSpan.FromMinutes(1));
        controller.Run();

        Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.False(watch.BlockerHadReportedWhenT2Started, "t2 started only after t1 reported: the slot t0 freed stayed idle");
    }

    private sealed class StartWatch(ManualResetEventSlim release) : ITrialCallback
    {
        private bool _blockerReported;

        public bool BlockerHadReportedWhenT2Started { get; private set; } = true;

        public void OnTrialStart(int iteration, IReadOnlyList<Trial> trials, Trial trial)
        {
            if (trial.Id != "t2") return;
            BlockerHadReportedWhenT2Started = _blockerReported;
            release.Set();
        }

        public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result)
        {
            if (trial.Id == "t1") _blockerReported = true;
        }
    }

    [Fact]
    public void Trials_on_separate_slots_really_run_at_the_same_time()
    {
        int running = 0, maxRunning = 0;
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, byte>();
        // Each trial's first step waits inside it until all four are inside theirs: only trials that run at once get past.
        using var allInside = new Barrier(4);
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("overlap", Overlapping);
        IEnumerable<Metrics> Overlapping(TrialConfig config, FunctionContext context)
        {
            for (int i = 0; i < 3; i++)
            {
                int now = Interlocked.Increment(ref running);
                int seen;
                while ((seen = Volatile.Read(ref maxRunning)) < now && Interlocked.CompareExchange(ref maxRunning, now, seen) != seen) { }
                threads[Environment.CurrentManagedThreadId] = 0;
                if (i == 0) allInside.SignalAndWait(TimeSpan.FromSeconds(30));
                Interlocked.Decrement(ref running);
                yield return new Metrics { { "i", i } };
            }
        }

        using var controller = Controller(4, registry, Enumerable.Range(0, 4).Select(_ => new Trial("overlap", resources: new Resources(cpu: 1))));
        var clock = Stopwatch.StartNew();
        controller.Run();
        output.WriteLine($"4 trials x 3 steps in {clock.ElapsedMilliseconds} ms, max {maxRunning} at once, {threads.Count} threads");

        Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.Equal(4, maxRunning);
        Assert.Equal(4, threads.Count);
    }

    [Fact]
    public void Under_load_no_result_is_lost_or_duplicated()
    {
        const int trials = 200, results = 50;
        var registry = TrainableRegistry.CreateDefault();
        var store = default(SqliteExperimentStore);
        using (var controller = Controller(2, registry,
                   Enumerable.Range(0, trials).Select(i => new Trial("noop", trialId: $"t{i:D3}", resources: new Resources(cpu: 0.25), stop: StopAt(results))),
                   buffer: 16))
        {
            var clock = Stopwatch.StartNew();
            controller.Run();
            output.WriteLine($"{trials} trials x {results} results in {clock.Elapsed.TotalSeconds:0.00} s ({trials * results / clock.Elapsed.TotalSeconds:0} results/s)");
            Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
            Assert.All(controller.Trials, t => Assert.Equal(results, t.LastResult!.TrainingIteration));
        }

        store = SqliteExperimentStore.Open(_dir);
        using (store)
        {
            Assert.Equal(trials * results, store.Count("results"));
            for (int i = 0; i < trials; i += 37)
                Assert.Equal(Enumerable.Range(1, results).Select(n => (long)n), store.ResultsOf($"t{i:D3}").Select(r => r.TrainingIteration));
        }
    }

    [Fact]
    public void Cancelling_a_run_stops_every_trial_promptly_and_the_run_resumes_to_the_same_end()
    {
        var registry = TrainableRegistry.CreateDefault();
        var config = TrialConfig.From(("sleep", 0.05));
        var trialList = Enumerable.Range(0, 6)
            .Select(i => new Trial("__fake", config, $"c{i}", new Resources(cpu: 1), StopAt(20), new CheckpointConfig { Frequency = 5 }))
            .ToList();
        // Cancelled when the first checkpoint is recorded (not after a fixed time: on a loaded machine the first trials
        // may not reach their first checkpoint in any fixed time, and then nothing would be left to resume from).
        using var cancel = new CancellationTokenSource();
        var canceller = new CancelOnFirstCheckpoint(cancel);
        using (var controller = Controller(2, registry, trialList, callbacks: [canceller]))
        {
            controller.Run(cancel.Token);
            output.WriteLine($"Run returned {canceller.SinceCancelled.ElapsedMilliseconds} ms after the cancellation");
            Assert.False(controller.IsFinished);
            Assert.Contains(controller.Trials, t => t.Status == TrialStatus.Pending);
            Assert.DoesNotContain(controller.Trials, t => t.Status == TrialStatus.Running);
        }

        var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(2));
        using (var resumed = TrialController.Resume(SqliteExperimentStore.Open(_dir), new ConcurrentTrialExecutor(allocator, registry), registry,
                   options: new ControllerOptions { ExperimentDirectory = _dir }))
        {
            Assert.Equal(6, resumed.Trials.Count);
            Assert.Contains(resumed.Trials, t => t.Checkpoint is not null);
            resumed.Run();
            Assert.All(resumed.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
            Assert.All(resumed.Trials, t => Assert.Equal(20, t.LastResult!.TrainingIteration));
            Assert.Equal(0, allocator.LiveSlots);
        }
        using var store = SqliteExperimentStore.Open(_dir);
        Assert.Equal(6 * 20, store.Count("results"));
        foreach (var t in trialList)
            Assert.Equal(Enumerable.Range(1, 20).Select(n => (long)n), store.ResultsOf(t.Id).Select(r => r.TrainingIteration));
    }

    /// <summary>Cancels the run from the controller thread when the first checkpoint is recorded.</summary>
    private sealed class CancelOnFirstCheckpoint(CancellationTokenSource cancel) : ITrialCallback
    {
        public Stopwatch SinceCancelled { get; } = new();

        public void OnCheckpoint(int iteration, IReadOnlyList<Trial> trials, Trial trial, Checkpoint checkpoint)
        {
            if (SinceCancelled.IsRunning) return;
            SinceCancelled.Start();
            cancel.Cancel();
        }
    }
}
