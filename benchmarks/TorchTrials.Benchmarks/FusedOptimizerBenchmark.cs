using System.Diagnostics;
using TorchSharp.Modules;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Fusion;
using static TorchSharp.torch;

namespace TorchTrials.Benchmarks;

/// <summary>
/// One fused optimizer step of K = 16 members (parameters of a 64-64-64-10 MLP stacked as [16, ...]) against 16 steps of
/// the unfused TorchTrials optimizer, one per member, for Adam and SGD with momentum; gradients fixed, CPU, the process's
/// LibTorch threads.
/// </summary>
public sealed class FusedOptimizerBenchmark : IBenchmark
{
    private const int K = 16;
    private static readonly long[][] Shapes = { new long[] { 64, 64 }, new long[] { 64 }, new long[] { 64, 64 }, new long[] { 64 }, new long[] { 10, 64 }, new long[] { 10 } };

    public string Name => "fused-optim";

    public string Title => "Fused optimizer step (K=16) vs 16 unfused steps";

    public BenchOutcome Run(BenchOptions options)
    {
        int rounds = options.Quick ? 50 : 500;
        var measurements = new List<Measurement>();
        double ratio = double.NaN;
        var notes = new List<string>();
        foreach (var kind in new[] { "adam", "sgd" })
        {
            var config = TrialConfig.From(("optimizer", kind), ("lr", 0.001));
            using var generator = new Generator(1, CPU);
            var fused = Shapes.Select(s => randn(new[] { (long)K }.Concat(s).ToArray(), generator: generator).requires_grad_()).ToArray();
            fused.Select(f => f.square().sum()).Aggregate((a, b) => a + b).backward();
            using var fusedOptimizer = FusedOptimizer.Create(kind, fused, K);
            for (int k = 0; k < K; k++) fusedOptimizer.ConfigureLane(k, config);
            var members = Enumerable.Range(0, K).Select(k => fused.Select(f => new Parameter(f[k].detach().clone())).ToArray()).ToArray();
            foreach (var m in members) m.Select(p => p.square().sum()).Aggregate((a, b) => a + b).backward();
            var unfused = members.Select(m => SupervisedTrainable.CreateOptimizer(m, config)).ToArray();
            var lanes = Enumerable.Range(0, K).ToArray();
            var fusedTimes = new List<double>();
            var unfusedTimes = new List<double>();
            for (int r = 0; r < Math.Max(3, options.Repeats); r++)
            {
                fusedTimes.Add(Time(() => fusedOptimizer.Step(lanes)));
                unfusedTimes.Add(Time(() =>
                {
                    foreach (var o in unfused) o.step();
                }));
            }
            measurements.Add(new Measurement($"{kind}: one fused step, {K} lanes", "µs", fusedTimes));
            measurements.Add(new Measurement($"{kind}: {K} unfused steps", "µs", unfusedTimes));
            double kindRatio = Stats.Median(unfusedTimes) / Stats.Median(fusedTimes);
            notes.Add($"{kind}: {kindRatio:0.00}x");
            if (kind == "adam") ratio = kindRatio;
            foreach (var o in unfused) o.Dispose();
            foreach (var f in fused) f.Dispose();
        }
        return new BenchOutcome(Name, Title, "the fused step is faster than the unfused steps it replaces (ratio above 1)",
            measurements, "16 unfused Adam steps / one fused Adam step", ratio, ratio > 1,
            $"LibTorch threads: {get_num_threads()}. Unfused / fused per kind: {string.Join(", ", notes)}.");

        double Time(Action step)
        {
            for (int i = 0; i < 5; i++) step();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < rounds; i++) step();
            return clock.Elapsed.TotalMilliseconds * 1000 / rounds;
        }
    }
}
