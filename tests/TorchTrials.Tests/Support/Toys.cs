using System.Text.Json.Nodes;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Support;

/// <summary>Function trainables for scheduler scenarios: cheap, deterministic, no tensors.</summary>
public static class Toys
{
    /// <summary>score = q * (1 - exp(-t / 4)): a learning curve whose final value is the config's q, forever.</summary>
    public static IEnumerable<Metrics> SaturatingCurve(TrialConfig config, FunctionContext context)
    {
        double q = config.GetDouble("q");
        for (long t = 1; ; t++) yield return new Metrics { { "score", q * (1 - Math.Exp(-t / 4.0)) } };
    }

    /// <summary>The same curve, checkpointing its step every iteration so it can be paused and resumed.</summary>
    public static IEnumerable<Metrics> ResumableCurve(TrialConfig config, FunctionContext context)
    {
        double q = config.GetDouble("q");
        long start = context.Checkpoint?.Metadata["t"]?.GetValue<long>() ?? 0;
        for (long t = start + 1; ; t++)
        {
            var metrics = new Metrics { { "score", q * (1 - Math.Exp(-t / 4.0)) } };
            metrics.Checkpoint = new TrainableState(metadata: new JsonObject { ["t"] = t });
            yield return metrics;
        }
    }
}
