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

/// <summary>Deterministic noise from a seed and a step (SplitMix64), so toy runs repeat exactly.</summary>
public static class ToyNoise
{
    public static double Uniform(long seed, long step, int stream)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)step * 0xBF58476D1CE4E5B9UL + (ulong)stream * 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    public static double Normal(long seed, long step) =>
        Math.Sqrt(-2 * Math.Log(1 - Uniform(seed, step, 1))) * Math.Cos(2 * Math.PI * Uniform(seed, step, 2));
}

/// <summary>Toys from the PBT literature.</summary>
public static class PbtToys
{
    /// <summary>
    /// The toy of the PBT paper (Jaderberg et al. 2017, Figure 2): maximise Q(θ) = 1.2 - (θ0² + θ1²) from θ = (0.9, 0.9),
    /// but each step is gradient ascent on the surrogate Q̂(θ|h) = 1.2 - (h0 θ0² + h1 θ1²) with η = 0.01, so a worker
    /// only shrinks the coordinates its hyperparameters h weigh. Reports Q as "q".
    /// </summary>
    public static IEnumerable<Metrics> Quadratic(TrialConfig config, FunctionContext context)
    {
        double theta0 = context.Checkpoint?.Metadata["theta0"]?.GetValue<double>() ?? 0.9;
        double theta1 = context.Checkpoint?.Metadata["theta1"]?.GetValue<double>() ?? 0.9;
        double h0 = config.GetDouble("h0"), h1 = config.GetDouble("h1");
        const double eta = 0.01;
        while (true)
        {
            theta0 += eta * -2 * h0 * theta0;
            theta1 += eta * -2 * h1 * theta1;
            var metrics = new Metrics { { "q", 1.2 - (theta0 * theta0 + theta1 * theta1) } };
            metrics.Checkpoint = new TrainableState(metadata: new JsonObject { ["theta0"] = theta0, ["theta1"] = theta1 });
            yield return metrics;
        }
    }

    /// <summary>
    /// Ray's pbt_function toy (python/ray/tune/examples/pbt_function.py): accuracy grows fastest when lr matches an
    /// optimal lr that rises from 0.001 to 0.01 as accuracy goes to 100 and falls back to 0.001 at 200 (a triangle), so
    /// no fixed lr is best throughout. Same constants (midpoint 100, tolerance 3, noise 2); the noise is drawn from
    /// the trial's seed and the step instead of a global generator, so runs repeat.
    /// </summary>
    public static IEnumerable<Metrics> ChangingLearningRate(TrialConfig config, FunctionContext context)
    {
        double accuracy = context.Checkpoint?.Metadata["acc"]?.GetValue<double>() ?? 0;
        long step = context.Checkpoint?.Metadata["step"]?.GetValue<long>() ?? 0;
        double lr = config.GetDouble("lr");
        long seed = context.Trial.Seed;
        const double midpoint = 100, tolerance = 3, noise = 2;
        while (true)
        {
            step++;
            double optimal = accuracy < midpoint ? 0.01 * accuracy / midpoint : 0.01 - 0.01 * (accuracy - midpoint) / midpoint;
            optimal = Math.Min(0.01, Math.Max(0.001, optimal));
            double qErr = Math.Max(lr, optimal) / Math.Min(lr, optimal);
            if (qErr < tolerance) accuracy += 1.0 / qErr * ToyNoise.Uniform(seed, step, 0);
            else if (lr > optimal) accuracy -= (qErr - tolerance) * ToyNoise.Uniform(seed, step, 0);
            accuracy += noise * ToyNoise.Normal(seed, step);
            accuracy = Math.Max(0, accuracy);
            var metrics = new Metrics { { "mean_accuracy", accuracy }, { "cur_lr", lr }, { "optimal_lr", optimal } };
            metrics.Checkpoint = new TrainableState(metadata: new JsonObject { ["acc"] = accuracy, ["step"] = step });
            yield return metrics;
        }
    }

    /// <summary>
    /// A bandit-shaped toy for PB2: each step adds exp(-((x - x*(t)) / 0.1)²) plus noise N(0, 0.3²) to the score, where
    /// the best x drifts from 0.25 to 0.75 over 100 steps. Only a narrow band of x pays, and the band moves, so choosing
    /// x from what was observed should beat drawing it at random.
    /// </summary>
    public static IEnumerable<Metrics> MovingOptimum(TrialConfig config, FunctionContext context)
    {
        double score = context.Checkpoint?.Metadata["score"]?.GetValue<double>() ?? 0;
        long step = context.Checkpoint?.Metadata["step"]?.GetValue<long>() ?? 0;
        double x = config.GetDouble("x");
        long seed = context.Trial.Seed;
        while (true)
        {
            step++;
            double best = 0.25 + 0.5 * Math.Min(step, 100) / 100.0;
            double gain = Math.Exp(-Math.Pow((x - best) / 0.1, 2));
            score += gain + 0.3 * ToyNoise.Normal(seed, step);
            var metrics = new Metrics { { "score", score }, { "gain", gain } };
            metrics.Checkpoint = new TrainableState(metadata: new JsonObject { ["score"] = score, ["step"] = step });
            yield return metrics;
        }
    }
}
