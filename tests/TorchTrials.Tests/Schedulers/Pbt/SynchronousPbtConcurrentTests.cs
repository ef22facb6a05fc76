using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.Pbt;

/// <summary>Synchronous PBT on the concurrent executor (the CLI's): a population larger than the slots pauses and resumes in turn.</summary>
public sealed class SynchronousPbtConcurrentTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    // Hung inside controller.Step() before the fix (the loop's deadline never fired): exploiting a paused trial copied
    // the donor's pending memory checkpoint while its save was still staged in the executor, waiting on the controller.
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void A_synchronous_population_larger_than_the_slots_finishes_on_the_concurrent_executor(int cpus)
    {
        var registry = LaneToy.Register(TrainableRegistry.CreateDefault());
        var (trials, pbt) = LaneToy.PbtPopulation(synch: true);
        using var executor = new ConcurrentTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(cpus)), registry,
            new ExecutorOptions { SpillDirectory = Path.Combine(_dir.Path, "spill") });
        using var controller = new TrialController(executor, registry, new TrialListSearch(trials), pbt,
            options: new ControllerOptions { ExperimentDirectory = Path.Combine(_dir.Path, "exp"), EventWait = TimeSpan.FromMilliseconds(50) });

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!controller.IsFinished)
        {
            Assert.True(DateTime.UtcNow < deadline,
                "the sweep did not finish: " + string.Join(", ", controller.Trials.Select(t => $"{t.Id} {t.Status} at {t.LastResult?.TrainingIteration ?? 0}")));
            controller.Step();
        }

        Assert.All(controller.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.All(controller.Trials, t => Assert.Equal(12, t.LastResult!.TrainingIteration));
        Assert.True(pbt.NumPerturbations > 0);
    }
}
