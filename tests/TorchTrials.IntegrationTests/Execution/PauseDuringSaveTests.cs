using System.Diagnostics;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;

namespace TorchTrials.IntegrationTests.Execution;

/// <summary>The concurrent executor's half of the pause-during-save scenario (the inline one is in the unit tests), under forced GC.</summary>
public class PauseDuringSaveTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-it", Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public void Pausing_a_trial_while_its_save_is_in_flight_lets_it_finish_after_unpausing()
    {
        using var collecting = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!collecting.IsCancellationRequested)
            {
                GC.Collect(0);
                Thread.Sleep(1); // a collection every millisecond or so, without starving a shared 2-core machine
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            var registry = TrainableRegistry.CreateDefault();
            var executor = new ConcurrentTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(2)), registry,
                new ExecutorOptions { SpillDirectory = Path.Combine(_dir, "spill") });
            var trial = new Trial("__fake", stop: Stop.AfterIterations(6),
                checkpoint: new CheckpointConfig { Frequency = 2 });
            using var controller = new TrialController(executor, registry, new TrialListSearch(new[] { trial }), store: new NullExperimentStore(_dir),
                options: new ControllerOptions { ExperimentDirectory = _dir, EventWait = TimeSpan.FromMilliseconds(50) });

            // Given a persistent save in flight,
            var bound = Stopwatch.StartNew();
            while (!trial.IsSaving && !controller.IsFinished && bound.Elapsed < TimeSpan.FromSeconds(10)) controller.Step();
            Assert.True(trial.IsSaving, "no save was seen in flight");

            // when the trial is paused and unpaused,
            controller.PauseTrial(trial);
            Assert.Equal(TrialStatus.Paused, trial.Status);
            controller.UnpauseTrial(trial);

            // then it trains on to its end (bounded: a stranded trial would wait forever).
            while (!controller.IsFinished && bound.Elapsed < TimeSpan.FromSeconds(20)) controller.Step();
            Assert.True(controller.IsFinished, $"the run did not end; the trial is {trial.Status} at iteration {trial.LastResult?.TrainingIteration}");
            Assert.Equal(TrialStatus.Terminated, trial.Status);
            Assert.Equal(6, trial.LastResult!.TrainingIteration);
        }
        finally
        {
            collecting.Cancel();
            collector.Join();
        }
    }
}
