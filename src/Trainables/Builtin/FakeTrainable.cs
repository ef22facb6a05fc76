using System.Text.Json.Nodes;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Trainables.Builtin;

/// <summary>
/// The test trainable, after Ray's <c>__fake</c> (RLlib's _MockTrainer). Every step reports
/// episode_reward_mean=10, episode_len_mean=10 and timesteps_this_iter=10. Config:
/// <c>mock_error</c> fails the second step (iteration 1) unless the trainable was restored;
/// <c>persistent_error</c> makes that failure happen after restores too; <c>sleep</c> seconds per step;
/// <c>user_checkpoint_freq</c> asks for a checkpoint every N iterations; <c>reset_supported</c> (default true).
/// Its <see cref="Info"/> travels through checkpoints, like the mock's set_info/get_info.
/// </summary>
[Trainable("__fake", Description = "Ray's mock trainer: constant metrics, optional failures and sleeps")]
public sealed class FakeTrainable : Trainable
{
    private bool _restored;

    /// <summary>Arbitrary state that checkpoints carry (the mock's info).</summary>
    public JsonNode? Info { get; set; }

    public bool Restored => _restored;

    public override void Setup(TrialConfig config)
    {
        Info = null;
        _restored = false;
    }

    public override Metrics Step()
    {
        if (Config.GetBool("mock_error", false) && Iteration == 1 && (Config.GetBool("persistent_error", false) || !_restored))
            throw new InvalidOperationException("mock error");
        double sleep = Config.GetDouble("sleep", 0);
        if (sleep > 0)
        {
            Context.Cancellation.WaitHandle.WaitOne(TimeSpan.FromSeconds(sleep));
            Context.Cancellation.ThrowIfCancellationRequested();
        }
        var metrics = new Metrics
        {
            { "episode_reward_mean", 10.0 },
            { "episode_len_mean", 10.0 },
            { Metrics.TimestepsThisIterKey, 10L },
        };
        int freq = Config.GetInt("user_checkpoint_freq", 0);
        if (freq > 0 && Iteration > 0 && Iteration % freq == 0) metrics.ShouldCheckpoint = true;
        return metrics;
    }

    public override TrainableState Save() => new(metadata: new JsonObject { ["info"] = Info?.DeepClone() });

    public override void Restore(TrainableState state)
    {
        Info = state.Metadata["info"]?.DeepClone();
        _restored = true;
    }

    public override bool Reset(TrialConfig newConfig)
    {
        if (!newConfig.GetBool("reset_supported", true)) return false;
        Info = null;
        _restored = false;
        return true;
    }
}

/// <summary>Does nothing and reports one constant value; for measuring the runner's own overhead.</summary>
[Trainable("noop", Description = "reports score=1 each step and does nothing else")]
public sealed class NoopTrainable : Trainable
{
    public override void Setup(TrialConfig config) { }

    public override Metrics Step() => new() { { "score", 1.0 } };

    public override TrainableState Save() => new();

    public override void Restore(TrainableState state) { }

    public override bool Reset(TrialConfig newConfig) => true;
}
