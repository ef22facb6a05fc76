using TorchTrials.Trainables;

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
}
