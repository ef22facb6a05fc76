using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Runner.Execution;

/// <summary>
/// The fused executor's own behaviour, on the fusable <see cref="LaneToy"/> (whose every loss is known in closed form, so
/// a lane that trained, resumed or was exploited wrongly shows as a wrong number): lanes refilled while others train,
/// pause and resume in another lane and alone, PBT exploit between lanes, a NaN lane failing only its trial, an interrupted
/// experiment resumed from persistent checkpoints, admission by fusion key, arrays under forced collections.
/// </summary>
[Collection(ForcedCollections.Name)]
public sealed class FusedExecutorTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempDir _dir = new();
    private readonly List<IDisposable> _owned = new();
    private readonly LaneToyRecorder _recorder = new();
    private readonly List<ExecutorEvent> _buffered = new();

    public void Dispose()
    {
        foreach (var owned in Enumerable.Reverse(_owned)) owned.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void A_lane_freed_by_a_stop_is_refilled_by_the_next_trial_while_the_other_lanes_keep_training()
    {
        var (executor, allocator) = Executor(cpus: 1, members: 3);
        var a = Toy("a", 0.1);
        var b = Toy("b", 0.2);
        var c = Toy("c", 0.3);
        foreach (var t in new[] { a, b }) Assert.True(executor.Start(t, null, Context));
        Assert.Equal(1, allocator.LiveSlots);
        Assert.Equal("a1.0", a.Lane);
        Assert.Equal("a1.1", b.Lane);

        executor.ContinueTraining(b, 400);
        Assert.Equal(new long[] { 1, 2 }, Train(executor, a, 2).Select(r => r.TrainingIteration));
        executor.Stop(a, error: false);

        Assert.True(executor.HasResourcesFor(c));
        Assert.True(executor.Start(c, null, Context));
        Assert.Equal("a1.0", c.Lane);
        Assert.Equal(1, allocator.LiveSlots);
        var cResults = Train(executor, c, 3);

        // c starts from its own seed in the freed lane; b went on meanwhile, unaffected.
        Assert.Equal(new long[] { 1, 2, 3 }, cResults.Select(r => r.TrainingIteration));
        for (int i = 0; i < 3; i++) Assert.Equal(LaneToy.LossAfter(LaneToy.Initial(0), 0.3, i + 1), Loss(cResults[i]), 9);
        var bResults = Collect(executor, b, until: results => results.Count >= 400);
        Assert.Equal(Enumerable.Range(1, 400).Select(i => (long)i), bResults.Select(r => r.TrainingIteration));
        Assert.Equal(LaneToy.LossAfter(0, 0.2, 50), Loss(bResults[49]), 9);
        // Steps were fused: some step held both b's and c's lanes.
        Assert.Contains(_recorder.Steps, lanes => lanes.Length == 2);
        Assert.Equal(1, _recorder.Arrays);
    }

    [Fact]
    public void A_paused_lane_resumes_in_another_lane_and_then_alone_where_it_left_off()
    {
        var (executor, allocator) = Executor(cpus: 1, members: 3);
        var a = Toy("a", 0.1, seed: 5);
        var b = Toy("b", 0.2);
        foreach (var t in new[] { a, b }) Assert.True(executor.Start(t, null, SeededContext));
        Train(executor, a, 3);
        var paused = executor.SaveToMemory(a);
        executor.Stop(a, error: false);
        var c = Toy("c", 0.3);
        Assert.True(executor.Start(c, null, SeededContext));
        Assert.Equal("a1.0", c.Lane);

        Assert.True(executor.Start(a, paused, SeededContext));
        Assert.Equal("a1.2", a.Lane);
        var resumed = Train(executor, a, 2);
        Assert.Equal(new long[] { 4, 5 }, resumed.Select(r => r.TrainingIteration));
        Assert.Equal(new long[] { 1, 2 }, resumed.Select(r => r.IterationsSinceRestore));
        Assert.Equal(LaneToy.LossAfter(5, 0.1, 5), Loss(resumed[1]), 9);

        // Alone: the lane checkpoint is the class's own checkpoint.
        var again = executor.SaveToMemory(a);
        executor.Stop(a, error: false);
        Drain(executor, () => again.IsReady);
        var alone = Own(new ConcurrentTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(1)), Registry(), new ExecutorOptions()));
        Assert.True(alone.Start(a, again, SeededContext));
        var last = Train(alone, a, 1).Single();
        Assert.Equal(6, last.TrainingIteration);
        Assert.Equal(LaneToy.LossAfter(5, 0.1, 6), Loss(last), 9);
        Assert.Equal(1, allocator.LiveSlots);
    }

    [Fact]
    public void A_PBT_exploit_between_lanes_of_one_array_copies_the_lane_and_applies_the_new_config()
    {
        var (executor, _) = Executor(cpus: 1, members: 2);
        var donor = Toy("donor", 0.1, seed: 6);
        var recipient = Toy("recipient", 0.4, seed: 1);
        foreach (var t in new[] { donor, recipient }) Assert.True(executor.Start(t, null, SeededContext));
        Train(executor, donor, 3);
        Train(executor, recipient, 3);

        var checkpoint = executor.SaveToMemory(donor);
        executor.Exploit(recipient, checkpoint, Config(0.05));
        var next = Train(executor, recipient, 1).Single();

        Assert.Equal(1, _recorder.Copies);
        Assert.Equal(4, next.TrainingIteration);
        double d3 = (6 - 3) * Math.Pow(1 - 2 * 0.1, 3);
        Assert.Equal(Math.Pow(d3 * (1 - 2 * 0.05), 2), Loss(next), 9);

        // A donor that trained on after its save is restored from the checkpoint instead of copied.
        var later = executor.SaveToMemory(donor);
        Train(executor, donor, 2);
        executor.Exploit(recipient, later, Config(0.05));
        var restored = Train(executor, recipient, 1).Single();
        Assert.Equal(1, _recorder.Copies);
        Assert.Equal(4, restored.TrainingIteration);
        Assert.Equal(Math.Pow(d3 * (1 - 2 * 0.05), 2), Loss(restored), 9);
    }

    [Fact]
    public void A_NaN_in_one_lane_fails_that_trial_only()
    {
        var (executor, _) = Executor(cpus: 1, members: 3);
        var sick = new Trial("lane_toy", TrialConfig.From(("lr", 0.1), ("nan_at", 3L)), "sick", new Resources(cpu: 1));
        var well = Toy("well", 0.2);
        foreach (var t in new[] { sick, well }) Assert.True(executor.Start(t, null, Context));
        executor.ContinueTraining(sick, 10);
        executor.ContinueTraining(well, 10);

        var events = new List<ExecutorEvent>();
        while (events.OfType<ResultEvent>().Where(r => r.Trial == well).Sum(r => r.Results.Count) < 10 || !events.Any(e => e is FailureEvent))
            events.Add(Next(executor));

        var failure = Assert.IsType<FailureEvent>(Assert.Single(events, e => e is FailureEvent));
        Assert.Same(sick, failure.Trial);
        Assert.Contains("NaN", failure.Error.Message);
        Assert.Equal(new long[] { 1, 2 }, events.OfType<ResultEvent>().Where(r => r.Trial == sick).SelectMany(r => r.Results).Select(r => r.TrainingIteration));
        Assert.Equal(LaneToy.LossAfter(0, 0.2, 10), Loss(events.OfType<ResultEvent>().Last(r => r.Trial == well).Results[^1]), 9);
    }

    [Fact]
    public void Arrays_training_under_forced_garbage_collection_report_every_result_in_order()
    {
        var (executor, _) = Executor(cpus: 2, members: 3);
        var trials = Enumerable.Range(0, 5).Select(i => Toy($"gc{i}", 0.01 * (i + 1))).ToList();
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(0);
                Thread.Sleep(0);
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            foreach (var trial in trials) Assert.True(executor.Start(trial, null, Context));
            Assert.Equal(2, ((FusedTrialExecutor)executor).ArrayCount);
            foreach (var trial in trials) executor.ContinueTraining(trial, 60);
            var results = trials.ToDictionary(t => t, _ => new List<TrialResult>());
            while (results.Values.Any(r => r.Count < 60))
            {
                switch (Next(executor))
                {
                    case ResultEvent r:
                        results[r.Trial].AddRange(r.Results);
                        if (r.EndOfTraining && results[r.Trial].Count < 60) executor.ContinueTraining(r.Trial, 60 - results[r.Trial].Count);
                        break;
                    case FailureEvent f:
                        Assert.Fail($"trial {f.Trial.Id} failed: {f.Error}");
                        break;
                }
            }
            for (int i = 0; i < trials.Count; i++)
            {
                var list = results[trials[i]];
                Assert.Equal(Enumerable.Range(1, 60).Select(n => (long)n), list.Select(r => r.TrainingIteration));
                Assert.Equal(LaneToy.LossAfter(0, 0.01 * (i + 1), 60), Loss(list[^1]), 9);
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }

    [Fact]
    public void A_free_slot_opens_an_array_for_the_key_with_the_most_pending_trials_and_free_lanes_are_refilled_first()
    {
        // FIFO order is a1, b1, b2, b3, a2: key b has the most pending, so the one slot's array is b's, and b3 refills
        // a lane of it before the a trials get the slot.
        var trials = new[] { ("a1", 0), ("b1", 1), ("b2", 1), ("b3", 1), ("a2", 0) }
            .Select(x => new Trial("lane_toy", TrialConfig.From(("lr", 0.1), ("group", (long)x.Item2)), x.Item1, new Resources(cpu: 1),
                stop: new Dictionary<string, double> { ["training_iteration"] = 3 }))
            .ToList();
        var order = new StartOrder();
        var controller = Controller(cpus: 1, members: 2, new TrialListSearch(trials), callbacks: [order]);
        RunToEnd(controller);

        Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.Equal(new[] { "b1", "b2", "b3", "a1", "a2" }, order.Ids);
        var lanes = controller.Trials.ToDictionary(t => t.Id, t => t.Lane);
        Assert.StartsWith("a1.", lanes["b3"]);
        Assert.StartsWith("a2.", lanes["a1"]);
    }

    [Fact]
    public void With_fusion_the_controller_queues_enough_trials_to_fill_every_array()
    {
        // 2 slots x 16 lanes: the controller keeps 32 trials queued (16 without fusion), so both arrays fill up.
        var trials = Enumerable.Range(0, 40)
            .Select(i => new Trial("lane_toy", TrialConfig.From(("lr", 0.1)), $"q{i:00}", new Resources(cpu: 1),
                stop: new Dictionary<string, double> { ["training_iteration"] = 1000 }))
            .ToList();
        var controller = Controller(cpus: 2, members: 16, new TrialListSearch(trials));
        controller.Step();
        controller.Step();
        Assert.True(controller.Trials.Count >= 32, $"{controller.Trials.Count} trials queued after two steps");
        for (int i = 0; i < 40; i++) controller.Step();

        Assert.Equal(32, controller.RunningCount);
        Assert.Equal(2, ((FusedTrialExecutor)controller.Executor).ArrayCount);
        Assert.Equal(8, controller.PendingTrials.Count());
    }

    [Fact]
    public void An_ASHA_sweep_fuses_its_trials_and_refills_lanes_of_stopped_ones()
    {
        var trials = Enumerable.Range(0, 12)
            .Select(i => new Trial("lane_toy", TrialConfig.From(("lr", 0.02 + 0.03 * i)), $"t{i:00}", new Resources(cpu: 1),
                stop: new Dictionary<string, double> { ["training_iteration"] = 9 }))
            .ToList();
        var asha = new AshaScheduler(new AshaOptions { Metric = "loss", Mode = MetricMode.Min, MaxT = 9, GracePeriod = 1, ReductionFactor = 3 });
        var controller = Controller(cpus: 2, members: 4, new TrialListSearch(trials), scheduler: asha);
        RunToEnd(controller);

        Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.Contains(controller.Trials, t => t.LastResult!.TrainingIteration < 9);
        Assert.Contains(controller.Trials, t => t.LastResult!.TrainingIteration == 9);
        Assert.All(controller.Trials, t => Assert.Matches(@"^a\d+\.[0-3]$", t.Lane));
        // A lane held more than one trial over the sweep, and steps were fused.
        Assert.Contains(controller.Trials.GroupBy(t => t.Lane), g => g.Count() > 1);
        Assert.Contains(_recorder.Steps, lanes => lanes.Length > 1);
        foreach (var t in controller.Trials)
            Assert.Equal(LaneToy.LossAfter(LaneToy.Initial(t.Sequence), t.Config.GetDouble("lr"), (int)t.LastResult!.TrainingIteration), Loss(t.LastResult), 9);
    }

    [Fact]
    public void An_asynchronous_PBT_population_in_one_array_exploits_between_lanes_without_errors() => PbtPopulation(synch: false);

    [Fact]
    public void A_synchronous_PBT_population_in_one_array_exploits_between_lanes_without_errors() => PbtPopulation(synch: true);

    private void PbtPopulation(bool synch, FuseMode fuse = FuseMode.Auto)
    {
        var (trials, pbt) = LaneToy.PbtPopulation(synch);
        var controller = Controller(cpus: 1, members: 8, new TrialListSearch(trials), scheduler: pbt, fuse: fuse);
        RunToEnd(controller);

        Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.All(controller.Trials, t => Assert.Equal(12, t.LastResult!.TrainingIteration));
        Assert.True(pbt.NumPerturbations > 0);
        Assert.All(controller.Trials, t => Assert.StartsWith("a", t.Lane));
        Assert.Contains(_recorder.Steps, lanes => lanes.Length > 1);
        // Exploited trials continue from their donors: the population's best loss is no worse than the best lr alone would give.
        Assert.True(controller.Trials.Min(t => Loss(t.LastResult!)) <= LaneToy.LossAfter(6, 0.29, 12) + 1e-6 || controller.Trials.Min(t => Loss(t.LastResult!)) < 1e-3);
    }

    [Fact]
    public void An_interrupted_fused_experiment_resumes_from_its_persistent_checkpoints()
    {
        var directory = Path.Combine(_dir.Path, "exp");
        List<Trial> Trials() => Enumerable.Range(0, 6)
            .Select(i => new Trial("lane_toy", TrialConfig.From(("lr", 0.05 + 0.01 * i)), $"t{i}", new Resources(cpu: 1),
                stop: new Dictionary<string, double> { ["training_iteration"] = 12 }, checkpoint: new CheckpointConfig { Frequency = 2 }))
            .ToList();
        var store = SqliteExperimentStore.Open(directory);
        var first = new TrialController(Fused(cpus: 2, members: 2), Registry(), new TrialListSearch(Trials()), store: store,
            options: new ControllerOptions { ExperimentDirectory = directory, EventWait = TimeSpan.FromMilliseconds(50), RunAhead = false });
        var deadline = DateTime.UtcNow + Patience;
        while (!first.Trials.Any(t => t.Checkpoint is PersistentCheckpoint { TrainingIteration: >= 4 }))
        {
            Assert.True(DateTime.UtcNow < deadline, "no checkpoint was saved in time");
            first.Step();
        }
        first.Interrupt();
        first.Checkpoint(force: true);
        first.Dispose();

        var resumed = Own(TrialController.Resume(SqliteExperimentStore.Open(directory), Fused(cpus: 2, members: 2), Registry(),
            options: new ControllerOptions { EventWait = TimeSpan.FromMilliseconds(50) }));
        Assert.Contains(resumed.Trials, t => t.Checkpoint is PersistentCheckpoint);
        RunToEnd(resumed);

        Assert.All(resumed.Trials, t =>
        {
            Assert.Equal(TrialStatus.Terminated, t.Status);
            Assert.Equal(12, t.LastResult!.TrainingIteration);
            Assert.Equal(LaneToy.LossAfter(LaneToy.Initial(t.Sequence), t.Config.GetDouble("lr"), 12), Loss(t.LastResult), 9);
            Assert.NotNull(t.Lane);
        });
        resumed.Checkpoint(force: true);
        resumed.Store.Flush();
        var stored = SqliteExperimentStore.Inspect(directory);
        Assert.All(stored.Trials.Select(TrialStateCodec.Decode), t => Assert.Matches(@"^a\d+\.[01]$", t.Lane));

        // torchtrials status shows the lanes, within 80 columns.
        var console = new TestConsole().Width(80);
        Assert.Equal(0, CliApp.Run(new[] { "status", directory }, console, plain: true));
        Assert.All(console.Lines, line => Assert.True(line.Length <= 80, $"{line.Length} columns: \"{line}\""));
        Assert.Contains("lane", console.Lines.Single(l => l.StartsWith("trial ", StringComparison.Ordinal)));
        var t0 = stored.Trials.Select(TrialStateCodec.Decode).Single(t => t.Id == "t0");
        Assert.Contains(console.Lines, l => l.StartsWith("t0 ", StringComparison.Ordinal) && (l + " ").Contains($" {t0.Lane} "));
    }

    private sealed class StartOrder : ITrialCallback
    {
        public List<string> Ids { get; } = new();

        public void OnTrialStart(int iteration, IReadOnlyList<Trial> trials, Trial trial) => Ids.Add(trial.Id);
    }

    private TrainableRegistry Registry() => LaneToy.Register(TrainableRegistry.CreateDefault(), recorder: _recorder);

    private FusedTrialExecutor Fused(int cpus, int members, FuseMode fuse = FuseMode.Auto) =>
        new(new DeviceSlotAllocator(DeviceInventory.Simulated(cpus)), Registry(), new FusionOptions { MaxMembers = members, Fuse = fuse },
            new ExecutorOptions { SpillDirectory = Path.Combine(_dir.Path, "spill") });

    private (ITrialExecutor Executor, DeviceSlotAllocator Allocator) Executor(int cpus, int members)
    {
        var executor = Own(Fused(cpus, members));
        return (executor, executor.Allocator);
    }

    private TrialController Controller(int cpus, int members, ISearchAlgorithm search, ITrialScheduler? scheduler = null,
        IEnumerable<ITrialCallback>? callbacks = null, FuseMode fuse = FuseMode.Auto) =>
        Own(new TrialController(Fused(cpus, members, fuse), Registry(), search, scheduler, callbacks: callbacks,
            options: new ControllerOptions { ExperimentDirectory = Path.Combine(_dir.Path, "exp"), EventWait = TimeSpan.FromMilliseconds(50) }));

    private static void RunToEnd(TrialController controller)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!controller.IsFinished)
        {
            Assert.True(DateTime.UtcNow < deadline, "the experiment did not finish in time");
            controller.Step();
        }
    }

    private T Own<T>(T owned) where T : IDisposable
    {
        _owned.Add(owned);
        return owned;
    }

    private static TrialConfig Config(double lr) => TrialConfig.From(("lr", lr));

    private static Trial Toy(string id, double lr, long seed = 0) =>
        new("lane_toy", TrialConfig.From(("lr", lr), ("seed", seed)), id, new Resources(cpu: 1));

    private static double Loss(TrialResult result) => Convert.ToDouble(result["loss"]);

    private static TrainableContext Context(Trial trial, DeviceSlot slot) => new() { TrialId = trial.Id, Slot = slot };

    /// <summary>A context whose seed is the trial's config seed (so w_0 = seed % 7).</summary>
    private static TrainableContext SeededContext(Trial trial, DeviceSlot slot) =>
        new() { TrialId = trial.Id, Slot = slot, Seed = trial.Config.GetLong("seed", 0) };

    private static ExecutorEvent Next(ITrialExecutor executor)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            executor.Dispatch();
            if (executor.NextEvent(TimeSpan.FromMilliseconds(100)) is { } ev) return ev;
        }
        throw new Xunit.Sdk.XunitException("no event came");
    }

    /// <summary>The next event of the trial's current incarnation; other trials' events wait in a buffer for their turn.</summary>
    private ExecutorEvent NextFor(ITrialExecutor executor, Trial trial)
    {
        while (true)
        {
            var ev = _buffered.FirstOrDefault(e => e.Trial == trial);
            if (ev is not null) _buffered.Remove(ev);
            else
            {
                ev = Next(executor);
                if (ev.Trial != trial)
                {
                    _buffered.Add(ev);
                    continue;
                }
            }
            if (ev.Incarnation == executor.IncarnationOf(trial)) return ev;
        }
    }

    /// <summary>Results of <paramref name="trial"/> (current incarnation) until <paramref name="until"/>; other trials' events are dropped.</summary>
    private List<TrialResult> Collect(ITrialExecutor executor, Trial trial, Func<List<TrialResult>, bool> until)
    {
        var results = new List<TrialResult>();
        while (!until(results))
        {
            var ev = NextFor(executor, trial);
            if (ev is FailureEvent f) throw new Xunit.Sdk.XunitException($"trial {trial.Id} failed: {f.Error}");
            if (ev is ResultEvent r) results.AddRange(r.Results);
        }
        return results;
    }

    private List<TrialResult> Train(ITrialExecutor executor, Trial trial, int steps)
    {
        var results = new List<TrialResult>();
        while (results.Count < steps)
        {
            executor.ContinueTraining(trial, steps - results.Count);
            while (true)
            {
                var ev = NextFor(executor, trial);
                if (ev is FailureEvent f) throw new Xunit.Sdk.XunitException($"trial {trial.Id} failed: {f.Error}");
                if (ev is not ResultEvent r) throw new Xunit.Sdk.XunitException($"expected results, got {ev}");
                results.AddRange(r.Results);
                if (r.EndOfTraining) break;
            }
        }
        return results;
    }

    private static void Drain(ITrialExecutor executor, Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the executor did not get there in time");
            executor.Dispatch();
            executor.NextEvent(TimeSpan.FromMilliseconds(20));
        }
    }
}
