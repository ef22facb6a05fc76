using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;

namespace TorchTrials.IntegrationTests.Execution;

/// <summary>PBT under the concurrent executor: exploits in place, pauses, donors saved on other trials' threads.</summary>
public class ConcurrentPbtTests
{
    [Fact]
    public async Task Pbt_with_in_place_exploits_and_pauses_finishes_on_trial_threads()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-it", Guid.NewGuid().ToString("N")[..12]);
        var pbt = new PopulationBasedTraining(new PbtOptions
        {
            TimeAttr = "training_iteration",
            PerturbationInterval = 2,
            HyperparamMutations = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.LogUniform(1e-5, 1e-1) },
            Seed = 3,
        });
        var tuner = new Tuner("synthetic_regression",
            new SearchSpace { { "lr", Domain.LogUniform(1e-5, 1e-1) }, { "width", 16 }, { "samples", 256 } },
            new TuneConfig { Metric = "val_loss", Mode = MetricMode.Min, Scheduler = pbt, NumSamples = 8, Seed = 2 },
            new RunConfig
            {
                StoragePath = dir,
                Stop = Stop.AfterIterations(16),
                ResourcesPerTrial = new Resources(cpu: 0.5),
                Inventory = DeviceInventory.Simulated(2),
                Loggers = TrialFileOptions.None,
            });
        var fit = tuner.FitAsync();
        var finished = await Task.WhenAny(fit, Task.Delay(TimeSpan.FromMinutes(2)));
        Assert.True(finished == fit, "the PBT run did not finish: a trial thread is waiting on a checkpoint that never completes");
        var grid = await fit;
        Assert.Equal(8, grid.NumTerminated);
        Assert.NotEmpty(pbt.Perturbations);
        Assert.All(grid, t => Assert.Equal(16, t.LastResult!.TrainingIteration));
        try { Directory.Delete(dir, true); } catch (IOException) { }
    }
}
