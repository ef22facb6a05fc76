using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>The library takes the experiment's lock itself, so two library users are refused like two CLI processes.</summary>
public class ExperimentOwnershipTests
{
    private static RunConfig Config(string storage, Resources? resources = null) => new()
    {
        Name = "exp",
        StoragePath = storage,
        Stop = Stop.AfterIterations(1),
        ResourcesPerTrial = resources ?? new Resources(cpu: 1),
        Inventory = DeviceInventory.Simulated(2),
        Loggers = TrialFileOptions.None,
    };

    [Fact]
    public async Task A_second_fit_or_restore_of_a_live_experiment_is_refused_naming_this_process_even_under_forced_collections()
    {
        using var temp = new TempDir();
        using var started = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
        {
            started.Set();
            release.Wait(TimeSpan.FromSeconds(30));
            yield return new Metrics { { "score", 1.0 } };
        }

        // Given a fit that holds its experiment while a thread forces collections (a lost lock object would release the lock)
        var first = new Tuner(Train, runConfig: Config(temp.Path));
        var fit = first.FitAsync();
        Assert.True(started.Wait(TimeSpan.FromSeconds(30)));
        using var stopCollecting = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stopCollecting.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        collector.Start();
        try
        {
            // When a second tuner fits the same experiment, and another restores it
            var again = Assert.Throws<ExperimentInUseException>(() => new Tuner(Train, runConfig: Config(temp.Path)).Fit());
            var restore = Assert.Throws<ExperimentInUseException>(() => Tuner.Restore(first.ExperimentPath, "train_function",
                registry: TrainableRegistry.CreateDefault().RegisterFunction("train_function", Train), runConfig: Config(temp.Path)).Fit());

            // Then both are refused, naming this process as the owner
            Assert.Equal(Environment.ProcessId, again.Owner?.Pid);
            Assert.Equal(Environment.ProcessId, restore.Owner?.Pid);
        }
        finally
        {
            stopCollecting.Cancel();
            collector.Join();
            release.Set();
        }

        // And the first fit ends normally, after which the experiment is free again
        var grid = await fit;
        Assert.Equal(1, grid.NumTerminated);
        Assert.Null(ExperimentLock.ReadOwner(first.ExperimentPath));
        using var owner = ExperimentLock.Acquire(first.ExperimentPath);
    }

    [Fact]
    public void Resources_this_machine_can_never_grant_are_refused_before_anything_is_created()
    {
        using var temp = new TempDir();
        var tuner = new Tuner("__fake", runConfig: Config(temp.Path, new Resources(cpu: 1000)));

        var error = Assert.Throws<ResourceRequestException>(() => tuner.Fit());

        Assert.Contains("requests 1000 CPUs but this machine has 2", error.Message);
        Assert.False(Directory.Exists(tuner.ExperimentPath));
    }

    [Fact]
    public void A_scheduler_without_its_metric_is_refused_before_anything_is_created()
    {
        using var temp = new TempDir();
        var tuner = new Tuner("__fake", tuneConfig: new TuneConfig { Scheduler = new AshaScheduler(new AshaOptions()) }, runConfig: Config(temp.Path));

        Assert.Throws<InvalidOperationException>(() => tuner.Fit());

        Assert.False(Directory.Exists(tuner.ExperimentPath));
    }

    [Fact]
    public void A_new_run_that_fails_before_its_first_trial_leaves_nothing_that_blocks_the_corrected_rerun()
    {
        using var temp = new TempDir();
        var broken = new Tuner("__fake", tuneConfig: new TuneConfig { SearchAlgorithm = new FailingSearch() }, runConfig: Config(temp.Path));
        Assert.Throws<InvalidOperationException>(() => broken.Fit());
        Assert.False(Directory.Exists(broken.ExperimentPath));

        var grid = new Tuner("__fake", runConfig: Config(temp.Path)).Fit();

        Assert.Equal(1, grid.NumTerminated);
    }

    private sealed class FailingSearch : ISearchAlgorithm
    {
        public Trial? NextTrial() => throw new InvalidOperationException("the search space could not be sampled");

        public bool IsFinished => false;

        public void SetFinished() { }

        public int TotalSamples => 1;

        public void OnTrialResult(string trialId, TrialResult result) { }

        public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome) { }

        public System.Text.Json.Nodes.JsonNode? SaveState() => null;

        public void RestoreState(System.Text.Json.Nodes.JsonNode state) { }
    }
}
