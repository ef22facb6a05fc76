using System.Diagnostics;
using System.Numerics.Tensors;
using TorchTrials.Runner.Search;

namespace TorchTrials.Benchmarks;

/// <summary>
/// The Parzen estimator's hot loop (one point's log density under a univariate mixture: Gaussian terms, their maximum,
/// log-sum-exp) as written, with explicit Vector512 / Vector256 paths, against the same through TensorPrimitives, which
/// picks the vector width itself but needs one pass over the components per operation and cannot skip negligible blocks.
/// </summary>
public sealed class ParzenKernelBenchmark : IBenchmark
{
    public string Name => "parzen-kernels";

    public string Title => "Parzen kernels: hand-vectorised vs TensorPrimitives";

    public BenchOutcome Run(BenchOptions options)
    {
        const int components = 2001;
        var random = new Random(1);
        var mu = Enumerable.Range(0, components).Select(_ => random.NextDouble()).ToArray();
        var invSigma = Enumerable.Range(0, components).Select(_ => 1 / (0.01 + 0.2 * random.NextDouble())).ToArray();
        var coef = Enumerable.Range(0, components).Select(_ => -0.9 - random.NextDouble()).ToArray();
        var points = Enumerable.Range(0, 24).Select(_ => random.NextDouble()).ToArray();
        var acc = new double[components];
        var scratch = new double[components];
        int rounds = options.Quick ? 200 : 4000;
        double checkOurs = 0, checkTheirs = 0;
        var ours = new List<double>();
        var theirs = new List<double>();
        for (int r = 0; r < Math.Max(3, options.Repeats); r++)
        {
            ours.Add(TimePerPoint(() =>
            {
                foreach (var x in points) checkOurs += ParzenEstimator.LogSumExp(acc, ParzenEstimator.GaussianTermsAndMax(acc, x, mu, invSigma, coef));
            }));
            theirs.Add(TimePerPoint(() =>
            {
                foreach (var x in points)
                {
                    TensorPrimitives.Subtract(x, mu, acc);
                    TensorPrimitives.Multiply(acc, invSigma, acc);
                    TensorPrimitives.Multiply(acc, acc, acc);
                    TensorPrimitives.MultiplyAdd(acc, -0.5, coef, acc);
                    double max = TensorPrimitives.Max<double>(acc);
                    TensorPrimitives.Subtract(acc, max, scratch);
                    TensorPrimitives.Exp<double>(scratch, scratch);
                    checkTheirs += Math.Log(TensorPrimitives.Sum<double>(scratch)) + max;
                }
            }));
        }
        double ratio = Stats.Median(theirs) / Stats.Median(ours);
        return new BenchOutcome(Name, Title, "one path (TensorPrimitives) only if it costs nothing measurable (ratio at most 1.02)",
            new[]
            {
                new Measurement($"as written (Vector512 / Vector256 / scalar), {components} components, per point", "µs", ours),
                new Measurement("TensorPrimitives (System.Numerics.Tensors 10.0.15), same work", "µs", theirs),
            },
            "TensorPrimitives / as written", ratio, ratio <= 1.02,
            $"Vector512 hardware acceleration here: {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}. Sums of the log densities agree to {Math.Abs(checkOurs - checkTheirs) / Math.Abs(checkOurs):0.0e0} (relative).");

        double TimePerPoint(Action action)
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < rounds; i++) action();
            return clock.Elapsed.TotalMilliseconds * 1000 / rounds / points.Length;
        }
    }
}
