using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Tests.Support;

namespace TorchTrials.Tests.Runner.Execution;

/// <summary>
/// The contract of <see cref="ITrialExecutor"/>: the scenarios every executor must pass, written once. Each scenario
/// drives the executor as the controller does (Start, ContinueTraining, NextEvent, Stop from one thread) and asserts
/// only what the controller can observe: events, their order and incarnations, slots held and freed.
/// <para>
/// To add an executor (the fused-array and cluster executors will): derive a sealed class from this one in this
/// folder and override <see cref="CreateExecutor"/> to build it on the allocator, registry and options given; every
/// scenario then runs against it. An executor that cannot meet a scenario is not done.
/// </para>
/// </summary>
public abstract class ExecutorContractTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly TempDir _dir = new();
    private readonly List<ITrialExecutor> _executors = new();

    /// <summary>The executor under test, on <paramref name="allocator"/>'s machine.</summary>
    protected abstract ITrialExecutor CreateExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions options);

    public void Dispose()
    {
        foreach (var executor in _executors) executor.Dispose();
        _dir.Dispose();
        GC.SuppressFinalize(this);
    }

    [Fact]
    public void A_started_trial_trains_the_steps_it_is_granted_and_its_results_arrive_in_order()
    {
        var (executor, allocator) = Executor(cpus: 1);
        var trial = Fake("t1");

        Assert.True(executor.Start(trial, null, Context));
        Assert.Equal(1, allocator.LiveSlots);
        var results = Train(executor, trial, 5);

        Assert.Equal(new long[] { 1, 2, 3, 4, 5 }, results.Select(r => r.TrainingIteration));
        Assert.Equal(new long[] { 10, 20, 30, 40, 50 }, results.Select(r => r.TimestepsTotal ?? 0));
        Assert.All(results, r => Assert.Equal("t1", r.TrialId));
        Assert.Equal(1, executor.IncarnationOf(trial));
    }

    [Fact]
    public void Asking_to_continue_while_a_grants_results_are_still_queued_trains_no_further()
    {
        // The controller asks to continue after every batch of results it takes; with run-ahead the
        // trial may have trained the whole grant by then. Those asks must not open a second grant: the trial would
        // train past its stop or checkpoint before the controller saw the result that decides it.
        var (executor, _) = Executor(cpus: 1);
        var trial = Fake("t1");
        Assert.True(executor.Start(trial, null, Context));
        executor.ContinueTraining(trial, 5);
        executor.Dispatch();
        Thread.Sleep(500);

        var results = new List<TrialResult>();
        while (results.Count < 5)
        {
            var ev = Assert.IsType<ResultEvent>(NextOf(executor, trial));
            results.AddRange(ev.Results);
            foreach (var result in ev.Results) trial.RecordResult(result);
            // As the controller does after every batch it takes, until the result that decides to stop.
            if (results.Count < 5) executor.ContinueTraining(trial, 5 - results.Count);
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(1);
        while (DateTime.UtcNow < deadline)
        {
            executor.Dispatch();
            if (executor.NextEvent(TimeSpan.FromMilliseconds(50)) is ResultEvent more && more.Trial == trial) results.AddRange(more.Results);
        }

        Assert.Equal(new long[] { 1, 2, 3, 4, 5 }, results.Select(r => r.TrainingIteration));
    }

    [Fact]
    public void A_trial_restarted_from_its_memory_checkpoint_continues_where_it_was_saved()
    {
        // Pause and resume as the controller does it: save to memory, stop, start again from the checkpoint.
        var (executor, allocator) = Executor(cpus: 1);
        var trial = Trained(executor, "t1", 3);
        var checkpoint = executor.SaveToMemory(trial);
        executor.Stop(trial, error: false);
        Drain(executor, () => checkpoint.IsReady && allocator.LiveSlots == 0);

        // As the controller does: start once the executor says there is room (a cluster hears of the freed slot after
        // the worker's allocator does).
        Assert.True(WaitToStart(executor, trial, checkpoint));
        Assert.False(trial.IsRestoring);
        var results = Train(executor, trial, 2);

        // The host's counters travel in the checkpoint: iterations go on from 3; the since-restore ones start over.
        Assert.Equal(new long[] { 4, 5 }, results.Select(r => r.TrainingIteration));
        Assert.Equal(new long[] { 1, 2 }, results.Select(r => r.IterationsSinceRestore));
        Assert.Equal(2, executor.IncarnationOf(trial));
    }

    [Fact]
    public void A_persistent_save_and_restore_each_complete_as_an_event()
    {
        var (executor, _) = Executor(cpus: 1);
        var first = Trained(executor, "t1", 2);
        executor.SaveToDisk(first, Path.Combine(_dir.Path, "ckpt"));
        var saved = Assert.IsType<SaveEvent>(NextOf(executor, first));
        // Stamped with the trial's newest result: a restart from it rolls the history back to iteration 2, not 0.
        Assert.Equal(2, saved.Checkpoint.TrainingIteration);
        executor.Stop(first, error: false);

        var second = Fake("t2");
        Assert.True(WaitToStart(executor, second, saved.Checkpoint));
        Assert.True(second.IsRestoring);
        Assert.IsType<RestoreEvent>(NextOf(executor, second));
        second.IsRestoring = false;

        Assert.Equal(3, Train(executor, second, 1).Single().TrainingIteration);
    }

    [Fact]
    public void A_memory_checkpoint_that_fails_to_restore_is_the_trials_failure_event_not_a_start_error()
    {
        // Every executor reports it the same way (Ray: a failed restore surfaces as the trial's failure and goes
        // through failure recovery), so max_failures decides whether the trial is retried.
        var (executor, allocator) = Executor(cpus: 1);
        var trial = Fake("t1");
        var broken = MemoryCheckpoint.Pending(null);
        broken.Fail(new InvalidOperationException("injected save failure"));

        Assert.True(executor.Start(trial, broken, Context));
        executor.ContinueTraining(trial);
        var failure = Assert.IsType<FailureEvent>(NextOf(executor, trial));

        Assert.Equal(executor.IncarnationOf(trial), failure.Incarnation);
        Assert.Contains("restoring its memory checkpoint failed", failure.Error.Message);
        Assert.False(failure.DeviceLost);
        executor.Stop(trial, error: true);
        Drain(executor, () => allocator.LiveSlots == 0);
    }

    [Fact]
    public void A_trainable_that_throws_is_reported_once_as_a_failure_after_the_results_before_it()
    {
        var (executor, allocator) = Executor(cpus: 1);
        var trial = Fake("t1", ("mock_error", true));
        executor.Start(trial, null, Context);

        var events = new List<ExecutorEvent>();
        while (events.LastOrDefault() is not FailureEvent)
        {
            executor.ContinueTraining(trial, 3);
            events.Add(NextOf(executor, trial));
        }

        // The mock fails its second step: one result, then the failure.
        Assert.Equal(new long[] { 1 }, events.OfType<ResultEvent>().SelectMany(r => r.Results).Select(r => r.TrainingIteration));
        Assert.Equal("mock error", ((FailureEvent)events[^1]).Error.Message);
        executor.Stop(trial, error: true);
        Drain(executor, () => allocator.LiveSlots == 0);
    }

    [Fact]
    public virtual void A_reused_trainable_keeps_its_slot_and_starts_the_next_trial_from_iteration_one()
    {
        var (executor, allocator) = Executor(cpus: 1, reuse: true);
        var first = Trained(executor, "t1", 2);
        executor.Stop(first, error: false);

        var second = Fake("t2");
        Assert.Equal(1, allocator.LiveSlots);
        Assert.False(allocator.CanAllocate(second.Resources));
        Assert.True(executor.HasResourcesFor(second));
        Assert.True(executor.Start(second, null, Context));

        var results = Train(executor, second, 2);
        Assert.Equal(new long[] { 1, 2 }, results.Select(r => r.TrainingIteration));
        Assert.All(results, r => Assert.Equal("t2", r.TrialId));
        Assert.Equal(1, allocator.LiveSlots);
    }

    [Fact]
    public virtual void A_reused_trainable_that_cannot_reset_fails_the_start_and_frees_its_slot()
    {
        var (executor, allocator) = Executor(cpus: 1, reuse: true);
        var first = Trained(executor, "t1", 1);
        executor.Stop(first, error: false);

        var second = Fake("t2", ("reset_supported", false));
        var error = Assert.Throws<TrialStartException>(() => executor.Start(second, null, Context));
        Assert.Contains("Reset()", error.Message);
        Drain(executor, () => allocator.LiveSlots == 0);
        Assert.True(WaitToStart(executor, Fake("t3"), null));
    }

    [Fact]
    public virtual void A_failed_trial_is_not_kept_for_reuse()
    {
        var (executor, allocator) = Executor(cpus: 1, reuse: true);
        var trial = Trained(executor, "t1", 1);
        executor.Stop(trial, error: true);

        Drain(executor, () => allocator.LiveSlots == 0);
    }

    [Fact]
    public void Slots_are_held_while_trials_run_and_a_stopped_trial_gives_its_slot_back()
    {
        var (executor, allocator) = Executor(cpus: 2);
        var a = Fake("a");
        var b = Fake("b");
        var c = Fake("c");
        Assert.True(executor.Start(a, null, Context));
        Assert.True(executor.Start(b, null, Context));

        Assert.False(executor.HasResourcesFor(c));
        Assert.False(executor.Start(c, null, Context));
        Assert.Equal(0, executor.IncarnationOf(c));

        executor.Stop(a, error: false);
        Drain(executor, () => executor.HasResourcesFor(c));
        Assert.True(executor.Start(c, null, Context));
        Assert.Equal(2, allocator.LiveSlots);
        Assert.Equal(new long[] { 1 }, Train(executor, c, 1).Select(r => r.TrainingIteration));
        Assert.Equal(new long[] { 1 }, Train(executor, b, 1).Select(r => r.TrainingIteration));
    }

    [Fact]
    public void A_request_that_never_fits_is_refused_and_gets_no_slot()
    {
        var (executor, allocator) = Executor(cpus: 1);
        var big = new Trial("__fake", trialId: "big", resources: new Resources(cpu: 2));

        Assert.False(executor.HasResourcesFor(big));
        Assert.Throws<ResourceRequestException>(() => executor.Start(big, null, Context));
        Assert.Equal(0, allocator.LiveSlots);
        Assert.Equal(0, executor.IncarnationOf(big));
    }

    [Fact]
    public void A_stopped_trial_takes_no_more_operations_and_the_executor_runs_dry()
    {
        var (executor, allocator) = Executor(cpus: 1);
        var trial = Trained(executor, "t1", 1);
        executor.ContinueTraining(trial);
        executor.Stop(trial, error: false);
        executor.Stop(trial, error: false);

        Assert.Throws<InvalidOperationException>(() => executor.ContinueTraining(trial));
        Assert.Throws<InvalidOperationException>(() => executor.SaveToMemory(trial));
        Drain(executor, () => !executor.HasWork);
        Assert.Equal(0, allocator.LiveSlots);
    }

    [Fact]
    public void Starting_a_running_trial_again_is_an_error()
    {
        var (executor, _) = Executor(cpus: 2);
        var trial = Fake("t1");
        executor.Start(trial, null, Context);

        Assert.Throws<InvalidOperationException>(() => executor.Start(trial, null, Context));
    }

    [Fact]
    public virtual void Disposing_the_executor_frees_every_slot_of_running_and_cached_trials()
    {
        var (executor, allocator) = Executor(cpus: 3, reuse: true);
        var cached = Trained(executor, "cached", 1);
        foreach (var trial in new[] { Fake("r1"), Fake("r2") })
        {
            executor.Start(trial, null, Context);
            executor.ContinueTraining(trial, 1000);
        }
        executor.Stop(cached, error: false);
        executor.Dispatch();
        Assert.Equal(3, allocator.LiveSlots);

        executor.Dispose();
        executor.Dispose();

        Assert.Equal(0, allocator.LiveSlots);
    }

    [Fact]
    public void Trials_training_tensors_under_forced_garbage_collection_report_every_result_in_order()
    {
        // Executors run TorchSharp on their own threads: collections at any moment must not corrupt a step or its
        // metrics (a finalizer freeing a tensor or Scalar still in use shows up as a failed or wrong step).
        var (executor, _) = Executor(cpus: 2);
        var trials = Enumerable.Range(0, 2)
            .Select(i => new Trial("synthetic_regression", TrialConfig.From(("width", 16), ("samples", 128), ("lr", 0.01)), $"gc{i}", new Resources(cpu: 1)))
            .ToList();
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(0);
                Thread.Sleep(CollectionPauseMilliseconds);
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            foreach (var trial in trials) Assert.True(executor.Start(trial, null, Context));
            foreach (var trial in trials) executor.ContinueTraining(trial, 40);
            var results = trials.ToDictionary(t => t, _ => new List<TrialResult>());
            while (results.Values.Any(r => r.Count < 40))
            {
                switch (Next(executor))
                {
                    case ResultEvent r:
                        results[r.Trial].AddRange(r.Results);
                        if (r.EndOfTraining && results[r.Trial].Count < 40) executor.ContinueTraining(r.Trial, 40 - results[r.Trial].Count);
                        break;
                    case FailureEvent f:
                        Assert.Fail($"trial {f.Trial.Id} failed: {f.Error}");
                        break;
                }
            }

            foreach (var (trial, list) in results)
            {
                Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), list.Select(r => r.TrainingIteration));
                Assert.All(list, r => Assert.True(double.IsFinite(Convert.ToDouble(r["loss"])), $"{trial.Id}: loss {r["loss"]}"));
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }

    /// <summary>
    /// How long the forced-collection thread of <see cref="Trials_training_tensors_under_forced_garbage_collection_report_every_result_in_order"/>
    /// sleeps between collections: a millisecond, about a thousand gen-0 collections a second. Back to back, on two
    /// cores, they starved the threads that carry the events (the fused executor's when it ran alone, the cluster's
    /// Orleans messages: "no event came" in 30 s): a limit of timing, not of native lifetimes, which a collection every
    /// millisecond still exercises on every step.
    /// </summary>
    private const int CollectionPauseMilliseconds = 1;

    protected (ITrialExecutor Executor, DeviceSlotAllocator Allocator) Executor(int cpus, bool reuse = false)
    {
        var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(cpus));
        var options = new ExecutorOptions { ReuseTrainables = reuse, SpillDirectory = Path.Combine(_dir.Path, "spill") };
        var executor = CreateExecutor(allocator, TrainableRegistry.CreateDefault(), options);
        _executors.Add(executor);
        return (executor, allocator);
    }

    protected static Trial Fake(string id, params (string Key, object? Value)[] config) =>
        new("__fake", TrialConfig.From(config), id, new Resources(cpu: 1));

    /// <summary>A trial started and trained <paramref name="steps"/> steps.</summary>
    private static Trial Trained(ITrialExecutor executor, string id, int steps)
    {
        var trial = Fake(id);
        Assert.True(executor.Start(trial, null, Context));
        Train(executor, trial, steps);
        return trial;
    }

    protected static TrainableContext Context(Trial trial, DeviceSlot slot) => new() { TrialId = trial.Id, Slot = slot };

    /// <summary>The next event of any trial; fails when none comes (or none can come).</summary>
    private static ExecutorEvent Next(ITrialExecutor executor)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            executor.Dispatch();
            if (executor.NextEvent(TimeSpan.FromMilliseconds(100)) is { } ev) return ev;
            if (!executor.HasWork) break;
        }
        throw new Xunit.Sdk.XunitException("no event came");
    }

    /// <summary>The next event of the trial's current incarnation; events of others are skipped.</summary>
    private static ExecutorEvent NextOf(ITrialExecutor executor, Trial trial)
    {
        while (true)
        {
            var ev = Next(executor);
            if (ev.Trial == trial && ev.Incarnation == executor.IncarnationOf(trial)) return ev;
        }
    }

    /// <summary>Grants <paramref name="steps"/> steps as the controller does (again after each end of training) and collects the results.</summary>
    protected static List<TrialResult> Train(ITrialExecutor executor, Trial trial, int steps)
    {
        var results = new List<TrialResult>();
        while (results.Count < steps)
        {
            executor.ContinueTraining(trial, steps - results.Count);
            while (true)
            {
                var ev = NextOf(executor, trial);
                if (ev is FailureEvent f) throw new Xunit.Sdk.XunitException($"trial {trial.Id} failed: {f.Error}");
                if (ev is not ResultEvent r) throw new Xunit.Sdk.XunitException($"expected results, got {ev}");
                results.AddRange(r.Results);
                // As the controller does: the trial keeps its newest result (what a save is stamped with).
                foreach (var result in r.Results) trial.RecordResult(result);
                if (r.EndOfTraining) break;
            }
        }
        return results;
    }

    /// <summary>Takes events until <paramref name="condition"/> holds (a slot freed on a trial's thread, say).</summary>
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

    private static bool WaitToStart(ITrialExecutor executor, Trial trial, Checkpoint? checkpoint)
    {
        Drain(executor, () => executor.HasResourcesFor(trial));
        return executor.Start(trial, checkpoint, Context);
    }
}

/// <summary>The contract on the deterministic single-thread executor.</summary>
[Collection(ForcedCollections.Name)]
public sealed class InlineExecutorContractTests : ExecutorContractTests
{
    protected override ITrialExecutor CreateExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions options) =>
        new InlineTrialExecutor(allocator, registry, options);
}

/// <summary>The contract on the executor that runs each trial on its own OS thread.</summary>
[Collection(ForcedCollections.Name)]
public sealed class ConcurrentExecutorContractTests : ExecutorContractTests
{
    protected override ITrialExecutor CreateExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions options) =>
        new ConcurrentTrialExecutor(allocator, registry, options);
}
