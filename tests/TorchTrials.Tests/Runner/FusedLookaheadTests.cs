using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>
/// <see cref="FusionOptions.Lookahead"/>: with random search (which samples independently of results) the controller keeps
/// enough trials pending that trials of one fusion key meet in one array; with a window of slots x K and more keys than
/// that, nearly every array opens for one trial.
/// </summary>
public sealed class FusedLookaheadTests
{
    private static int ArraysOpened(int lookahead)
    {
        using var dir = new TempDir();
        var recorder = new LaneToyRecorder();
        var grid = new Tuner("lane_toy",
            new SearchSpace { ["lr"] = Domain.Uniform(0.01, 0.3), ["group"] = Domain.Choice(Enumerable.Range(0, 30).Cast<object>().ToArray()) },
            new TuneConfig { Metric = "loss", Mode = MetricMode.Min, NumSamples = 90, Seed = 5, Fusion = new FusionOptions { MaxMembers = 4, Lookahead = lookahead } },
            new RunConfig
            {
                Name = "exp",
                StoragePath = dir.Path,
                Stop = Stop.AfterIterations(3),
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(2),
                Loggers = TrialFileOptions.None,
                Quiet = true,
            },
            LaneToy.Register(TrainableRegistry.CreateDefault(), recorder: recorder)).Fit();
        Assert.Equal(0, grid.NumErrors);
        Assert.Equal(90, grid.Count);
        return recorder.Arrays;
    }

    [Fact]
    public void Random_search_keeps_trials_pending_so_one_keys_trials_share_arrays()
    {
        // 30 keys, 90 trials, 4 lanes per array: about 30 arrays when the trials of a key meet (a few keys have more than 4).
        int grouped = ArraysOpened(FusionOptions.DefaultLookahead);
        // A window of 16 pending trials (the controller's minimum; 2 slots x 4 lanes is 8) over 30 keys: most arrays hold one or two trials.
        int windowed = ArraysOpened(0);
        Assert.True(grouped <= 40, $"{grouped} arrays opened with the lookahead");
        Assert.True(windowed >= grouped * 3 / 2, $"{windowed} arrays without the lookahead vs {grouped} with it");
    }
}
