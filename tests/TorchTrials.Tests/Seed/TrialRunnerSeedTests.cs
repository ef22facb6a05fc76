using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Seed;

/// <summary>
/// The trial-lifecycle scenarios of the seed file (Ray Tune's TrialRunner and RayTrialExecutor tests), one test each,
/// named after the Ray test. Ray's ray.init(num_cpus, num_gpus, resources) becomes a simulated inventory; GPUs are
/// simulated, so these run without a GPU.
/// </summary>
public class TrialRunnerSeedTests
{
    private static Trial Fake(int? stopAt = null, double cpu = 1, double gpu = 0, TrialConfig? config = null, int checkpointFreq = 0,
        bool checkpointAtEnd = false, int maxFailures = 0, string? restorePath = null, IReadOnlyDictionary<string, double>? custom = null) =>
        new("__fake", config, resources: new Resources(cpu: cpu, gpu: gpu, custom: custom),
            stop: stopAt is { } s ? Stop.AfterIterations(s) : null,
            checkpoint: new CheckpointConfig { Frequency = checkpointFreq, AtEnd = checkpointAtEnd },
            maxFailures: maxFailures, restorePath: restorePath);

    private static TrialConfig MockError(bool persistent = false) =>
        TrialConfig.From(("mock_error", true), ("persistent_error", persistent));

    [Fact]
    public void testStopTrial_stops_a_running_and_a_pending_trial()
    {
        using var h = new Harness(cpus: 4, gpus: 2);
        var trials = Enumerable.Range(0, 4).Select(_ => Fake(stopAt: 5, cpu: 1, gpu: 1)).ToArray();
        h.Add(trials);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trials[0].Status);
        Assert.Equal(TrialStatus.Pending, trials[1].Status);

        h.Controller.StopTrial(trials[0]);
        Assert.Equal(TrialStatus.Terminated, trials[0].Status);
        Assert.Equal(TrialStatus.Pending, trials[1].Status);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Terminated, trials[0].Status);
        Assert.Equal(TrialStatus.Running, trials[1].Status);
        Assert.Equal(TrialStatus.Pending, trials[^1].Status);

        h.Controller.StopTrial(trials[^1]);
        Assert.Equal(TrialStatus.Terminated, trials[0].Status);
        Assert.Equal(TrialStatus.Running, trials[1].Status);
        Assert.Equal(TrialStatus.Terminated, trials[^1].Status);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Terminated, trials[0].Status);
        Assert.Equal(TrialStatus.Running, trials[1].Status);
        Assert.Equal(TrialStatus.Running, trials[2].Status);
        Assert.Equal(TrialStatus.Terminated, trials[^1].Status);
    }

    [Fact]
    public void testCheckpointingAtEnd_saves_after_the_final_result()
    {
        using var h = new Harness(cpus: 1, gpus: 1);
        var trial = Fake(stopAt: 2, cpu: 1, gpu: 1, checkpointAtEnd: true);
        h.Add(trial);

        h.Controller.Step(); // start trial
        Assert.Equal(TrialStatus.Running, trial.Status);
        h.Controller.Step(); // process result
        h.Controller.Step(); // process result, dispatch save
        Assert.True(trial.LastResult!.Done);
        Assert.False(trial.HasCheckpoint);
        h.Controller.Step(); // process save
        Assert.True(trial.HasCheckpoint);
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.True(File.Exists(Path.Combine(((PersistentCheckpoint)trial.Checkpoint!).Directory, PersistentCheckpoint.TensorFile)));
    }

    [Fact]
    public void testResourceScheduler_never_runs_two_one_gpu_trials_on_one_gpu()
    {
        var snapshot = new TrialStatusSnapshotTaker();
        using var h = new Harness(cpus: 4, gpus: 1, callbacks: new[] { snapshot });
        h.Add(Fake(stopAt: 1, cpu: 1, gpu: 1), Fake(stopAt: 1, cpu: 1, gpu: 1));

        h.RunToEnd();

        Assert.True(snapshot.MaxRunningTrials() < 2);
        Assert.True(snapshot.AllTrialsAreTerminated());
    }

    [Fact]
    public void testCustomResources_a_trial_waits_for_a_custom_resource()
    {
        using var h = new Harness(cpus: 4, gpus: 2, custom: new Dictionary<string, double> { ["a"] = 2 });
        var custom = new Dictionary<string, double> { ["a"] = 2 };
        var trials = new[] { Fake(stopAt: 1, cpu: 1, gpu: 0, custom: custom), Fake(stopAt: 1, cpu: 1, gpu: 0, custom: custom) };
        h.Add(trials);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trials[0].Status);
        Assert.Equal(TrialStatus.Pending, trials[1].Status);
        Assert.Equal("Resources requested: 1/4 CPUs, 0/2 GPUs, 0.0/32.0 GiB GPU memory (a: 2/2)", h.Allocator.DescribeUsage());

        h.Controller.Step();
        Assert.Equal(TrialStatus.Terminated, trials[0].Status);
        Assert.Equal(TrialStatus.Pending, trials[1].Status);
    }

    [Fact]
    public void testTrialErrorResumeTrue_errored_trials_resume_and_finish()
    {
        using var dir = new TempDir();
        Trial[] trials;
        using (var h = new Harness(cpus: 3, directory: dir.Path, sqlite: true))
        {
            trials = new[] { Fake(stopAt: 4, config: MockError()), Fake(stopAt: 4), Fake(stopAt: 4) };
            h.Add(trials);
            h.RunToEnd();
            h.Controller.Checkpoint(force: true);
            Assert.Equal(TrialStatus.Error, trials[0].Status);
        }

        var registry = TrainableRegistry.CreateDefault();
        var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(3));
        using var resumed = TrialController.Resume(SqliteExperimentStore.Open(dir.Path), new InlineTrialExecutor(allocator, registry), registry,
            new ResumeOptions { ResumeErrored = true }, options: new ControllerOptions { EventWait = TimeSpan.Zero });
        Assert.Equal(3, resumed.Trials.Count);
        Assert.DoesNotContain(resumed.Trials, t => t.Status == TrialStatus.Error);

        bool disabledError = false;
        foreach (var t in resumed.Trials)
        {
            if (!t.Config.GetBool("mock_error", false)) continue;
            t.UpdateConfig(t.Config.With("mock_error", false));
            disabledError = true;
        }
        Assert.True(disabledError);

        while (!resumed.IsFinished) resumed.Step();
        Assert.DoesNotContain(resumed.Trials, t => t.Status == TrialStatus.Error);
        Assert.All(resumed.Trials, t => Assert.Equal(4, t.LastResult!.TrainingIteration));
    }

    [Fact]
    public void testErrorHandling_an_invalid_trainable_errors_and_the_next_trial_runs()
    {
        var registry = TrainableRegistry.CreateDefault().Register("asdf", () => null);
        using var h = new Harness(cpus: 4, gpus: 2, registry: registry);
        var trials = new[]
        {
            new Trial("asdf", resources: new Resources(cpu: 1, gpu: 1), stop: Stop.AfterIterations(1)),
            Fake(stopAt: 1, cpu: 1, gpu: 1),
        };
        h.Add(trials);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Error, trials[0].Status);
        Assert.Equal(TrialStatus.Pending, trials[1].Status);
        Assert.Contains("Invalid trainable: asdf", trials[0].ErrorMessage);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Error, trials[0].Status);
        Assert.Equal(TrialStatus.Running, trials[1].Status);
    }

    [Fact]
    public void testPauseThenResume_state_set_before_a_pause_survives_it()
    {
        using var h = new Harness(cpus: 1, gpus: 1);
        var trial = Fake(stopAt: 2, cpu: 1, gpu: 1);
        h.Add(trial);

        h.Controller.Step(); // start trial
        h.Controller.Step(); // process result
        Assert.Equal(TrialStatus.Running, trial.Status);
        var fake = (FakeTrainable)h.Executor.TrainableOf(trial)!;
        Assert.Null(fake.Info);
        fake.Info = 1;

        h.Controller.PauseTrial(trial);
        Assert.Equal(TrialStatus.Paused, trial.Status);
        Assert.Equal(0, h.Allocator.LiveSlots);
        Assert.IsType<MemoryCheckpoint>(trial.Checkpoint);

        // The rest of Ray's scenario: unpause, restore from the memory checkpoint, finish.
        h.Controller.UnpauseTrial(trial);
        Assert.Equal(TrialStatus.Pending, trial.Status);
        h.Controller.Step(); // start trial, restore from memory
        Assert.Equal(TrialStatus.Running, trial.Status);
        Assert.Equal(1, ((FakeTrainable)h.Executor.TrainableOf(trial)!).Info!.GetValue<int>());
        h.Controller.Step(); // process result
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.Equal(2, trial.LastResult!.TrainingIteration);
    }

    [Fact]
    public void testRestoreMetricsAfterCheckpointing_since_restore_counters_start_over()
    {
        var observer = new TrialResultObserver();
        using var h = new Harness(cpus: 1, gpus: 1, callbacks: new[] { observer });
        var first = Fake(stopAt: 2, cpu: 1, gpu: 1, checkpointFreq: 1);
        h.Add(first);
        h.RunToEnd(maxSteps: 100) ;
        Assert.Equal(TrialStatus.Terminated, first.Status);

        var restorePath = ((PersistentCheckpoint)first.Checkpoint!).Directory;
        var second = new Trial("__fake", resources: new Resources(cpu: 1, gpu: 1), restorePath: restorePath);
        h.Add(second);

        observer.Reset();
        while (!observer.JustReceivedAResult()) h.Controller.Step();
        Assert.Equal(10, second.LastResult!.TimestepsSinceRestore);
        Assert.Equal(1, second.LastResult.IterationsSinceRestore);
        Assert.True(second.LastResult.TimeSinceRestore > 0);
        Assert.Equal(3, second.LastResult.TrainingIteration);

        while (!observer.JustReceivedAResult()) h.Controller.Step();
        Assert.Equal(20, second.LastResult.TimestepsSinceRestore);
        Assert.Equal(2, second.LastResult.IterationsSinceRestore);
        Assert.True(second.LastResult.TimeSinceRestore > 0);
        Assert.Equal(40, second.LastResult.TimestepsTotal);
    }

    [Fact]
    public void testRestoreMetricsAfterCheckpointing_restore_is_its_own_step_then_results_count_from_it()
    {
        using var h = new Harness(cpus: 1, gpus: 1);
        var first = Fake(cpu: 1, gpu: 1, checkpointFreq: 1);
        h.Add(first);

        h.Controller.Step(); // start trial
        Assert.Equal(TrialStatus.Running, first.Status);
        ((FakeTrainable)h.Executor.TrainableOf(first)!).Info = 1;
        h.Controller.Step(); // process result, dispatch save
        h.Controller.Step(); // process save
        h.Controller.StopTrial(first);
        var restorePath = ((PersistentCheckpoint)first.Checkpoint!).Directory;

        var second = new Trial("__fake", resources: new Resources(cpu: 1, gpu: 1), restorePath: restorePath);
        h.Add(second);

        h.Controller.Step(); // start trial, dispatch restore
        Assert.Equal(TrialStatus.Terminated, first.Status);
        Assert.Equal(TrialStatus.Running, second.Status);
        h.Controller.Step(); // process restore
        Assert.Equal(1, ((FakeTrainable)h.Executor.TrainableOf(second)!).Info!.GetValue<int>());
        h.Controller.Step(); // process result
        Assert.Equal(10, second.LastResult!.TimestepsSinceRestore);
        Assert.Equal(1, second.LastResult.IterationsSinceRestore);
        Assert.True(second.LastResult.TimeSinceRestore > 0);
        h.Controller.Step(); // process result
        Assert.Equal(20, second.LastResult.TimestepsSinceRestore);
        Assert.Equal(2, second.LastResult.IterationsSinceRestore);
        Assert.True(second.LastResult.TimeSinceRestore > 0);
    }

    [Fact]
    public void testFractionalGpus_two_half_gpu_trials_share_one_gpu()
    {
        using var h = new Harness(cpus: 4, gpus: 1);
        var trials = Enumerable.Range(0, 4).Select(_ => Fake(cpu: 1, gpu: 0.5)).ToArray();
        h.Add(trials);

        for (int i = 0; i < 10; i++) h.Controller.Step();

        Assert.Equal(TrialStatus.Running, trials[0].Status);
        Assert.Equal(TrialStatus.Running, trials[1].Status);
        Assert.Equal(TrialStatus.Pending, trials[2].Status);
        Assert.Equal(TrialStatus.Pending, trials[3].Status);
        Assert.Equal("Resources requested: 2/4 CPUs, 1/1 GPUs, 16.0/16.0 GiB GPU memory", h.Allocator.DescribeUsage());
    }

    [Fact]
    public void testFailFast_one_error_terminates_the_others_and_ends_the_run()
    {
        using var h = new Harness(cpus: 1, gpus: 1, failFast: FailFastMode.StopAll);
        var trials = new[]
        {
            Fake(cpu: 1, gpu: 1, checkpointFreq: 1, config: MockError(persistent: true)),
            Fake(cpu: 1, gpu: 1, checkpointFreq: 1, config: MockError(persistent: true)),
        };
        h.Add(trials);

        h.RunToEnd();

        Assert.Equal(TrialStatus.Error, trials[0].Status);
        Assert.Equal(TrialStatus.Terminated, trials[1].Status);
        Assert.Throws<TrialControllerException>(() => h.Controller.Step());
    }

    [Fact]
    public void testFailureRecoveryDisabled_the_trial_errors_and_searcher_and_scheduler_hear_of_it()
    {
        var search = new RecordingSearch();
        var scheduler = new RecordingScheduler();
        using var h = new Harness(cpus: 1, gpus: 1, scheduler: scheduler, search: search);
        var trial = Fake(cpu: 1, gpu: 1, checkpointFreq: 1, maxFailures: 0, config: TrialConfig.From(("mock_error", true)));
        h.Add(trial);

        h.RunToEnd();

        Assert.Equal(TrialStatus.Error, trial.Status);
        Assert.Equal(1, trial.NumFailures);
        Assert.Single(search.ErroredTrials);
        Assert.Single(scheduler.ErroredTrials);
        Assert.True(File.Exists(trial.ErrorFile));
        Assert.Contains("mock error", File.ReadAllText(trial.ErrorFile!));
    }

    [Fact]
    public void testFailFastRaise_the_error_surfaces_from_the_step_that_processes_it()
    {
        using var h = new Harness(cpus: 1, gpus: 1, failFast: FailFastMode.Raise);
        var trials = new[]
        {
            Fake(cpu: 1, gpu: 1, checkpointFreq: 1, config: MockError(persistent: true)),
            Fake(cpu: 1, gpu: 1, checkpointFreq: 1, config: MockError(persistent: true)),
        };
        h.Add(trials);

        h.Controller.Step(); // start trial
        Assert.Equal(TrialStatus.Running, trials[0].Status);
        h.Controller.Step(); // process result, dispatch save
        Assert.Equal(TrialStatus.Running, trials[0].Status);
        h.Controller.Step(); // process save
        var error = Assert.Throws<TrialFailedException>(() => h.Controller.Step()); // error
        Assert.Contains("mock error", error.Message);
    }

    [Fact]
    public void testFailFastRaise_statuses_are_left_as_they_were_when_it_raised()
    {
        using var h = new Harness(cpus: 1, gpus: 1, failFast: FailFastMode.Raise);
        var trials = new[]
        {
            Fake(cpu: 1, gpu: 1, checkpointFreq: 1, config: MockError(persistent: true)),
            Fake(cpu: 1, gpu: 1, checkpointFreq: 1, config: MockError(persistent: true)),
        };
        h.Add(trials);

        Assert.ThrowsAny<Exception>(() =>
        {
            while (!h.Controller.IsFinished) h.Controller.Step();
        });

        Assert.Equal(TrialStatus.Running, trials[0].Status);
        Assert.Equal(TrialStatus.Pending, trials[1].Status);
    }

    [Fact]
    public void testMultiStepRun2_stepping_past_the_end_throws()
    {
        using var h = new Harness(cpus: 1);
        var trial = Fake(stopAt: 2, cpu: 1, gpu: 0);
        h.Add(trial);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trial.Status);
        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trial.Status);
        h.Controller.Step();
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.Throws<TrialControllerException>(() => h.Controller.Step());
    }

    /// <summary>
    /// Ray's test stops the actor, updates resources and starts it again from the scheduler. Here the scheduler asks the
    /// controller to change the resources, which pauses the trial into a memory checkpoint and restarts it with them.
    /// </summary>
    private sealed class ChangingScheduler : TrialSchedulerBase
    {
        public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
        {
            if (result.TrainingIteration == 1) control.ChangeTrialResources(trial, new Resources(cpu: 2, gpu: 0));
            return SchedulerDecision.Continue;
        }
    }

    [Fact]
    public void testChangeResources_a_scheduler_resizes_a_trial_on_the_fly()
    {
        using var h = new Harness(cpus: 2, scheduler: new ChangingScheduler());
        var trial = Fake(stopAt: 2, cpu: 1, gpu: 0);
        h.Add(trial);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trial.Status);
        Assert.Equal(1, h.Allocator.Committed.Cpu.ToDouble());
        Assert.Throws<InvalidOperationException>(() => trial.UpdateResources(new Resources(cpu: 2, gpu: 0)));

        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trial.Status);
        Assert.Equal(2, h.Allocator.Committed.Cpu.ToDouble());
        Assert.Equal(new Resources(cpu: 2, gpu: 0), trial.Resources);

        h.Controller.Step();
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.Equal(2, trial.LastResult!.TrainingIteration);
    }

    [Fact]
    public void update_resources_is_refused_while_running_and_allowed_otherwise()
    {
        using var h = new Harness(cpus: 2);
        var trial = Fake(stopAt: 3);
        h.Add(trial);
        trial.UpdateResources(new Resources(cpu: 2));
        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, trial.Status);
        var error = Assert.Throws<InvalidOperationException>(() => trial.UpdateResources(new Resources(cpu: 1)));
        Assert.Contains("Cannot update resources while", error.Message);
        Assert.Equal(2, h.Allocator.Committed.Cpu.ToDouble());
    }

    [Fact]
    public void default_resource_request_is_used_and_conflicts_with_explicit_resources()
    {
        var registry = TrainableRegistry.CreateDefault()
            .Register("declares", () => new FakeTrainable(), config => new Resources(cpu: config.GetDouble("cpu"), gpu: config.GetDouble("gpu")))
            .Register("workers", () => new FakeTrainable(), config => new Resources(cpu: 0, gpu: 0,
                extraCpu: config.GetInt("num_cpus_per_worker") * config.GetInt("num_workers"), extraGpu: 0));
        using var h = new Harness(cpus: 4, gpus: 1, registry: registry);

        var declared = new Trial("declares", TrialConfig.From(("cpu", 2), ("gpu", 1)));
        h.Add(declared);
        Assert.Equal(new Resources(cpu: 2, gpu: 1), declared.Resources);

        var conflicting = new Trial("declares", TrialConfig.From(("cpu", 2), ("gpu", 1)), resources: new Resources(cpu: 1));
        var error = Assert.Throws<ArgumentException>(() => h.Controller.AddTrial(conflicting));
        Assert.Contains("have been automatically set", error.Message);

        var helpers = new Trial("workers", TrialConfig.From(("num_cpus_per_worker", 1), ("num_workers", 2)), stop: Stop.AfterIterations(1));
        h.Add(helpers);
        Assert.Equal(2, helpers.Resources.ExtraCpu.ToDouble());
        Assert.Equal(2, helpers.Resources.CpuTotal.ToDouble());
    }

    [Fact]
    public void extra_cpu_reserved_for_helpers_counts_against_the_machine()
    {
        var registry = TrainableRegistry.CreateDefault()
            .Register("workers", () => new FakeTrainable(), config => new Resources(cpu: 0, extraCpu: 3));
        using var h = new Harness(cpus: 4, registry: registry);
        var a = new Trial("workers", stop: Stop.AfterIterations(5));
        var b = new Trial("workers", stop: Stop.AfterIterations(5));
        h.Add(a, b);
        h.Controller.Step();
        h.Controller.Step();
        Assert.Equal(TrialStatus.Running, a.Status);
        Assert.Equal(TrialStatus.Pending, b.Status);
        Assert.Equal(3, h.Allocator.Committed.CpuTotal.ToDouble());
    }

    [Fact]
    public void testFailureRecoveryNodeRemoval_a_lost_device_requeues_the_trial()
    {
        var search = new RecordingSearch();
        var scheduler = new RecordingScheduler();
        using var h = new Harness(cpus: 1, gpus: 1, scheduler: scheduler, search: search);
        var trial = Fake(cpu: 1, gpu: 1, checkpointFreq: 1, maxFailures: 1, config: TrialConfig.From(("mock_error", true)));
        h.Add(trial);

        h.Controller.Step(); // start trial
        Assert.Equal(TrialStatus.Running, trial.Status);
        h.Controller.Step(); // process result, dispatch save
        h.Controller.Step(); // process save
        Assert.Equal(TrialStatus.Running, trial.Status);

        h.Allocator.LoseGpu(0); // mimic a node failure: the trial's device disappears
        h.Controller.Step(); // detect the failure
        Assert.Equal(TrialStatus.Pending, trial.Status);
        Assert.Equal(1, trial.NumFailures);
        Assert.Empty(search.ErroredTrials);
        Assert.Single(scheduler.ErroredTrials);
        Assert.Equal(0, h.Allocator.LiveSlots);

        // When the device comes back, the trial resumes from its persistent checkpoint and finishes.
        h.Allocator.RestoreGpu(0);
        h.Controller.Step(); // start, dispatch restore
        Assert.Equal(TrialStatus.Running, trial.Status);
        Assert.True(trial.IsRestoring);
    }

    [Fact]
    public void testStartFailure_an_invalid_trainable_errors_at_start_and_frees_its_slot()
    {
        var registry = TrainableRegistry.CreateDefault().Register("asdf", () => null);
        using var h = new Harness(cpus: 1, registry: registry);
        var trial = new Trial("asdf", resources: new Resources(cpu: 1, gpu: 0));

        Assert.Throws<TrialStartException>(() => h.Executor.Start(trial, null, (t, slot) => new TrainableContext { TrialId = t.Id, Slot = slot }));
        Assert.Equal(0, h.Allocator.LiveSlots);

        h.Add(trial);
        h.Controller.Step();
        Assert.Equal(TrialStatus.Error, trial.Status);
    }
}
