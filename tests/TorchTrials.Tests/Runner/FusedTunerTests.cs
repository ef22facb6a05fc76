using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>Fusion through the public API: <see cref="TuneConfig.Fusion"/> picks the fused executor; off trains alone.</summary>
public sealed class FusedTunerTests
{
    private static ResultGrid Sweep(string storage, FusionOptions? fusion, LaneToyRecorder recorder) =>
        new Tuner("lane_toy",
            new SearchSpace { ["lr"] = Domain.Uniform(0.01, 0.3) },
            new TuneConfig
            {
                Metric = "loss",
                Mode = MetricMode.Min,
                NumSamples = 10,
                Seed = 3,
                Scheduler = new AshaScheduler(new AshaOptions { MaxT = 9, GracePeriod = 1, ReductionFactor = 3 }),
                Fusion = fusion,
            },
            new RunConfig
            {
                Name = "exp",
                StoragePath = storage,
                Stop = Stop.AfterIterations(9),
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(2),
                Loggers = TrialFileOptions.None,
                Quiet = true,
            },
            LaneToy.Register(TrainableRegistry.CreateDefault(), recorder: recorder)).Fit();

    [Fact]
    public void An_ASHA_sweep_with_fusion_on_trains_its_trials_in_lanes_with_no_errors_and_the_same_results_as_alone()
    {
        using var fusedDir = new TempDir();
        using var aloneDir = new TempDir();
        var fusedRecorder = new LaneToyRecorder();
        var aloneRecorder = new LaneToyRecorder();

        var fused = Sweep(fusedDir.Path, new FusionOptions { MaxMembers = 4 }, fusedRecorder);
        var alone = Sweep(aloneDir.Path, FusionOptions.Off, aloneRecorder);

        Assert.Equal(0, fused.NumErrors);
        Assert.Equal(10, fused.Count);
        Assert.All(fused, t => Assert.Matches(@"^a\d+\.[0-3]$", t.Lane));
        Assert.Contains(fusedRecorder.Steps, lanes => lanes.Length > 1);
        Assert.All(alone, t => Assert.Null(t.Lane));
        Assert.Empty(aloneRecorder.Steps);
        // The same seeds and configs give the same final loss fused or alone (the toy's lanes are exact).
        var aloneById = alone.ToDictionary(t => t.Config.GetDouble("lr"));
        int compared = 0;
        foreach (var t in fused.Where(t => t.LastResult!.TrainingIteration == 9))
            if (aloneById.TryGetValue(t.Config.GetDouble("lr"), out var twin) && twin.LastResult!.TrainingIteration == 9)
            {
                Assert.Equal(Convert.ToDouble(twin.LastResult["loss"]), Convert.ToDouble(t.LastResult!["loss"]), 9);
                compared++;
            }
        Assert.True(compared > 0, "no trial reached max_t both fused and alone");
    }
}
