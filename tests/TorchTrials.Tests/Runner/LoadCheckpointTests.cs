using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Runner;

/// <summary>Issue 11, item 4: the best trial's checkpoint loads back into the user's own model in one call.</summary>
public class LoadCheckpointTests
{
    private const int Iterations = 5;

    private static nn.Module<Tensor, Tensor> Model(long width) => nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 1));

    private static Tensor Probe() => tensor(new float[] { 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f }).reshape(4, 3);

    /// <summary>Fits a small net to ones; reports the sum of its outputs on a fixed probe, and checkpoints every step.</summary>
    private static IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
    {
        using var model = Model(config.GetInt("width"));
        using var optimizer = new Adam(model.parameters(), lr: config.GetDouble("lr"));
        using var x = Probe();
        using var target = ones(4, 1);
        while (true)
        {
            optimizer.zero_grad();
            nn.functional.mse_loss(model.forward(x), target).backward();
            optimizer.step();
            yield return new Metrics { ["probe"] = model.forward(x).sum(), Checkpoint = TrainableState.Capture(model, optimizer) };
        }
    }

    private static TrialSummary BestOfSweep(string storage, CheckpointConfig checkpoint) =>
        new Tuner(Train,
            new SearchSpace { ["lr"] = Domain.Grid(0.01, 0.05), ["width"] = 4 },
            new TuneConfig { Metric = "probe", Mode = MetricMode.Max, Seed = 1 },
            new RunConfig
            {
                StoragePath = storage,
                Stop = Stop.AfterIterations(Iterations),
                Checkpoint = checkpoint,
                Inventory = DeviceInventory.Simulated(1),
                Executor = ExecutorKind.Inline,
                Quiet = true,
            }).Fit().GetBestResult();

    private static double ProbeOf(nn.Module<Tensor, Tensor> model)
    {
        using var _ = NewDisposeScope();
        using var x = Probe();
        return model.forward(x).sum().item<float>();
    }

    [Fact]
    public void The_best_trials_checkpoint_loads_into_a_fresh_model_and_optimizer_in_one_call()
    {
        using var temp = new TempDir();
        var best = BestOfSweep(temp.Path, new CheckpointConfig { AtEnd = true });
        using var fresh = Model(4);
        using var optimizer = new Adam(fresh.parameters(), lr: 0.01);
        double before = ProbeOf(fresh);

        // When the best trial's checkpoint is loaded into a freshly built model and optimizer
        var loaded = best.LoadCheckpointInto(fresh, optimizer);

        // Then the model is the one returned, and it answers the probe exactly as the trial reported at its last step
        Assert.Same(fresh, loaded);
        double reported = best.LastResult!.GetDouble("probe");
        Assert.NotEqual(reported, before);
        Assert.Equal(reported, ProbeOf(fresh));

        // And the optimizer carries the trial's Adam state: one step per iteration
        Assert.All(optimizer.state_dict().State, s => Assert.Equal(Iterations, ((Adam.State)s).step));
    }

    [Fact]
    public void A_model_built_with_another_width_is_refused_naming_the_tensor_and_both_shapes()
    {
        using var temp = new TempDir();
        var best = BestOfSweep(temp.Path, new CheckpointConfig { AtEnd = true });
        using var wider = Model(8);

        var error = Assert.Throws<InvalidOperationException>(() => best.LoadCheckpointInto(wider));

        Assert.Contains("model.0.weight has shape [4, 3], the model's is [8, 3]: build the model as the trial did", error.Message);
    }

    [Fact]
    public void A_model_with_a_layer_the_checkpoint_lacks_or_without_one_it_has_is_refused()
    {
        using var temp = new TempDir();
        var best = BestOfSweep(temp.Path, new CheckpointConfig { AtEnd = true });
        using var deeper = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1), nn.Linear(1, 1));
        using var shallower = nn.Sequential(nn.Linear(3, 4));

        Assert.Contains("has no tensor model.3.weight", Assert.Throws<InvalidOperationException>(() => best.LoadCheckpointInto(deeper)).Message);
        Assert.Contains("has model.2.", Assert.Throws<InvalidOperationException>(() => best.LoadCheckpointInto(shallower)).Message);
    }

    [Fact]
    public void A_trial_that_saved_no_checkpoint_to_disk_says_how_to_save_one()
    {
        using var temp = new TempDir();
        var best = BestOfSweep(temp.Path, CheckpointConfig.None);
        using var model = Model(4);

        var error = Assert.Throws<InvalidOperationException>(() => best.LoadCheckpointInto(model));

        Assert.Equal($"trial {best.TrialId} has no checkpoint on disk: set RunConfig.Checkpoint = new CheckpointConfig {{ AtEnd = true }} (spec: checkpoint: {{at_end: true}})", error.Message);
    }
}
