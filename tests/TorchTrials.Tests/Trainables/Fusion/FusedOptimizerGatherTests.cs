using TorchTrials.Trainables;
using TorchTrials.Trainables.Fusion;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables.Fusion;

/// <summary>
/// <see cref="FusedOptimizer.Gather"/> / <see cref="FusedOptimizer.Scatter"/>: stepping a compact optimizer over gathered
/// lanes for several steps and scattering back equals stepping those lanes in place, and the other lanes stay unchanged.
/// </summary>
public class FusedOptimizerGatherTests
{
    [Theory]
    [InlineData("adam")]
    [InlineData("adamw")]
    [InlineData("sgd")]
    [InlineData("rmsprop")]
    public void CompactStepsThenScatterEqualStepsInPlace(string kind)
    {
        const int K = 5;
        int[] lanes = { 3, 1 };
        using var scope = NewDisposeScope();
        manual_seed(7);
        var shapes = new[] { new long[] { K, 4, 3 }, new long[] { K, 4 } };
        var start = shapes.Select(s => randn(s)).ToArray();
        var inPlace = start.Select(t => t.clone().requires_grad_(true)).ToArray();
        var gathered = start.Select(t => t.clone().requires_grad_(true)).ToArray();
        using var a = FusedOptimizer.Create(kind, inPlace, K);
        using var b = FusedOptimizer.Create(kind, gathered, K);
        for (int k = 0; k < K; k++)
        {
            var config = TrialConfig.From(("optimizer", kind), ("lr", 0.01 * (k + 1)), ("momentum", k % 2 == 0 ? 0.9 : 0.0), ("weight_decay", 0.01 * k));
            a.ConfigureLane(k, config);
            b.ConfigureLane(k, config);
        }
        // One step of every lane first, so the state gathered is not all zeros.
        var grads0 = shapes.Select(s => randn(s)).ToArray();
        a.Step(Enumerable.Range(0, K).ToList(), grads0);
        b.Step(Enumerable.Range(0, K).ToList(), grads0);

        var grads = Enumerable.Range(0, 3).Select(_ => shapes.Select(s => randn(new[] { (long)lanes.Length }.Concat(s.Skip(1)).ToArray())).ToArray()).ToList();
        foreach (var g in grads) a.Step(lanes, g);

        using var index = tensor(lanes.Select(l => (long)l).ToArray());
        var leaves = gathered.Select(p => p.index_select(0, index).detach().requires_grad_(true)).ToList();
        using (var compact = b.Gather(lanes, leaves))
        {
            foreach (var g in grads) compact.Step(Enumerable.Range(0, lanes.Length).ToList(), g);
            using (no_grad())
                foreach (var (p, leaf) in gathered.Zip(leaves)) p.index_copy_(0, index, leaf);
            b.Scatter(compact, lanes);
        }
        // A further step of every lane reads the scattered state (moments, step counts, momentum buffers).
        var grads1 = shapes.Select(s => randn(s)).ToArray();
        a.Step(Enumerable.Range(0, K).ToList(), grads1);
        b.Step(Enumerable.Range(0, K).ToList(), grads1);
        for (int i = 0; i < shapes.Length; i++)
            Assert.True(inPlace[i].allclose(gathered[i], rtol: 1e-6, atol: 1e-7), $"{kind}: parameter {i} differs after gather/scatter");
    }
}
