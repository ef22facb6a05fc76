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

/// <summary>
/// A counter trainable: v starts at config "start" and grows by config "step" (default 1) each iteration, reported as
/// "v" and checkpointed every iteration. A trial whose id is in <see cref="FailNext"/> throws on its next step (once).
/// </summary>
public sealed class CounterToy
{
    public HashSet<string> FailNext { get; } = new(StringComparer.Ordinal);

    public IEnumerable<Metrics> Run(TrialConfig config, FunctionContext context)
    {
        double v = context.Checkpoint?.Metadata["v"]?.GetValue<double>() ?? config.GetDouble("start");
        while (true)
        {
            if (FailNext.Remove(context.Trial.TrialId)) throw new InvalidOperationException($"injected failure of {context.Trial.TrialId}");
            v += config.GetDouble("step", 1);
            var metrics = new Metrics { { "v", v } };
            metrics.Checkpoint = new TrainableState(metadata: new JsonObject { ["v"] = v });
            yield return metrics;
        }
    }
}
