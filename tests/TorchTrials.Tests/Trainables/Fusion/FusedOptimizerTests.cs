using System.Text.Json.Nodes;
using TorchSharp.Modules;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Fusion;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables.Fusion;

/// <summary>
/// Fused optimizers against TorchTrials' unfused ones: K = 4 members with different hyperparameters, random gradients,
/// each lane compared with the unfused optimizer of the same config over the same slice (parameters and the checkpoint
/// the unfused optimizer writes: names, shapes, values, metadata). Tolerance: 1e-6 relative, 1e-7 absolute (float32);
/// the differences seen on the CPU are an ulp or two (LibTorch's vectorised add with a Scalar alpha is a fused multiply-add,
/// a per-lane tensor factor is rounded before the add).
/// </summary>
public class FusedOptimizerTests
{
    private const int K = 4;
    private static readonly long[][] Shapes = { new long[] { 4, 6 }, new long[] { 4 }, new long[] { 3, 4 }, new long[] { 3 } };

    public static TheoryData<string> Kinds => new() { "adam", "adamw", "sgd", "rmsprop" };

    private static TrialConfig[] Configs(string kind) => kind switch
    {
        "adam" or "adamw" => new[]
        {
            TrialConfig.From(("optimizer", kind), ("lr", 0.01)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.05), ("beta1", 0.8), ("beta2", 0.99), ("eps", 1e-6), ("weight_decay", 0.1)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.001), ("beta1", 0.95), ("beta2", 0.9), ("eps", 1e-4), ("weight_decay", 0.01)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.02), ("beta1", 0.0), ("beta2", 0.5)),
        },
        "sgd" => new[]
        {
            TrialConfig.From(("optimizer", kind), ("lr", 0.1)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.05), ("momentum", 0.5), ("nesterov", true), ("weight_decay", 0.01)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.2), ("momentum", 0.0)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.01), ("momentum", 0.99), ("weight_decay", 0.1)),
        },
        _ => new[]
        {
            TrialConfig.From(("optimizer", kind), ("lr", 0.01)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.005), ("momentum", 0.0), ("alpha", 0.9), ("eps", 1e-6)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.02), ("momentum", 0.5), ("weight_decay", 0.01)),
            TrialConfig.From(("optimizer", kind), ("lr", 0.001), ("momentum", 0.0), ("weight_decay", 0.1)),
        },
    };

    /// <summary>A fused optimizer over [K, ...] leaves and, per member, the unfused optimizer over copies of its slices.</summary>
    private sealed class Rig : IDisposable
    {
        public readonly Tensor[] Fused;
        public readonly FusedOptimizer Optimizer;
        public readonly Parameter[][] Members = new Parameter[K][];
        public readonly optim.Optimizer[] Unfused = new optim.Optimizer[K];
        public readonly TrialConfig[] Configs;
        private int _iteration;

        public Rig(string kind, TrialConfig[]? configs = null)
        {
            Configs = configs ?? FusedOptimizerTests.Configs(kind);
            using var generator = new Generator(42, CPU);
            Fused = Shapes.Select(s => randn(new[] { (long)K }.Concat(s).ToArray(), generator: generator).requires_grad_()).ToArray();
            Optimizer = FusedOptimizer.Create(kind, Fused, K);
            for (int k = 0; k < K; k++)
            {
                Optimizer.ConfigureLane(k, Configs[k]);
                Members[k] = Fused.Select(f => new Parameter(f[k].detach().clone())).ToArray();
                Unfused[k] = SupervisedTrainable.CreateOptimizer(Members[k], Configs[k]);
            }
        }

        /// <summary>Random gradients for every lane; the fused optimizer and the unfused ones of <paramref name="lanes"/> step.</summary>
        public void Iterate(int[]? lanes = null, Action<Action>? around = null)
        {
            lanes ??= Enumerable.Range(0, K).ToArray();
            using var scope = NewDisposeScope();
            using var generator = new Generator((ulong)(1000 + _iteration++), CPU);
            var grads = Shapes.Select(s => randn(new[] { (long)K }.Concat(s).ToArray(), generator: generator)).ToArray();
            Optimizer.ZeroGrad();
            Fused.Zip(grads).Select(p => p.First.mul(p.Second).sum()).Aggregate((a, b) => a + b).backward();
            (around ?? (a => a()))(() => Optimizer.Step(lanes));
            foreach (int k in lanes)
            {
                Unfused[k].zero_grad();
                Members[k].Zip(grads).Select(p => p.First.mul(p.Second[k]).sum()).Aggregate((a, b) => a + b).backward();
                Unfused[k].step();
            }
        }

        public TrainableState SaveLane(int lane)
        {
            var tensors = new List<KeyValuePair<string, Tensor>>();
            var metadata = new JsonObject();
            Optimizer.SaveLane(lane, tensors, metadata);
            return new TrainableState(tensors, metadata);
        }

        /// <summary>Member <paramref name="k"/> becomes a new unfused trial: parameters copied from the fused lane, an optimizer restored from <paramref name="state"/> (or fresh).</summary>
        public void ReplaceMember(int k, TrialConfig config, TrainableState? state)
        {
            Unfused[k].Dispose();
            Configs[k] = config;
            Members[k] = Fused.Select(f => new Parameter(f[k].detach().clone())).ToArray();
            Unfused[k] = SupervisedTrainable.CreateOptimizer(Members[k], config);
            state?.RestoreInto((nn.Module?)null, Unfused[k]);
        }

        public void Dispose()
        {
            Optimizer.Dispose();
            foreach (var o in Unfused) o.Dispose();
            foreach (var f in Fused) f.Dispose();
        }
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what, double rtol = 1e-6, double atol = 1e-7)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(actual.allclose(expected, rtol, atol), $"{what}: max difference {(actual - expected).abs().max().item<float>()}");
    }

    /// <summary>Lane <paramref name="k"/>'s parameters and saved state against member k's parameters and unfused checkpoint.</summary>
    private static void AssertLaneMatches(Rig rig, int k, string what, double rtol = 1e-6, double atol = 1e-7)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < Shapes.Length; i++)
            AssertClose(rig.Members[k][i], rig.Fused[i][k], $"{what}: lane {k} parameter {i}", rtol, atol);
        using var fused = rig.SaveLane(k);
        using var unfused = TrainableState.Capture((nn.Module?)null, rig.Unfused[k]);
        Assert.Equal(unfused.Tensors.Select(t => t.Key), fused.Tensors.Select(t => t.Key));
        foreach (var ((name, a), (_, b)) in unfused.Tensors.Zip(fused.Tensors))
            AssertClose(a, b, $"{what}: lane {k} {name}", rtol, atol);
        Assert.Equal(unfused.Metadata.ToJsonString(), fused.Metadata.ToJsonString());
    }

    private static void AssertAllLanesMatch(Rig rig, string what)
    {
        for (int k = 0; k < K; k++) AssertLaneMatches(rig, k, what);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Each_lane_steps_as_the_unfused_optimizer_of_its_config(string kind)
    {
        // Given four members with different hyperparameters, fused and unfused
        using var rig = new Rig(kind);
        AssertAllLanesMatch(rig, $"{kind} before any step");

        // When both take five steps on the same random gradients, each lane matches its unfused optimizer at every step
        for (int step = 1; step <= 5; step++)
        {
            rig.Iterate();
            AssertAllLanesMatch(rig, $"{kind} step {step}");
        }

        // And the members really differ (a lane that ignored its own hyperparameters would not match, but check they moved apart)
        Assert.False(rig.Fused[0][0].allclose(rig.Fused[0][1]));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Lanes_not_stepped_keep_their_parameters_and_state_exactly(string kind)
    {
        // Given a rig after two steps of every lane
        using var rig = new Rig(kind);
        rig.Iterate();
        rig.Iterate();
        var before = new[] { 1, 3 }.ToDictionary(k => k, k => (Params: rig.Fused.Select(f => f[k].clone()).ToArray(), State: rig.SaveLane(k)));

        // When only lanes 0 and 2 step three more times (every lane has a gradient)
        for (int i = 0; i < 3; i++) rig.Iterate(new[] { 0, 2 });

        // Then lanes 1 and 3 are bit for bit as they were, and lanes 0 and 2 match their unfused optimizers
        foreach (var (k, (parameters, state)) in before)
        {
            for (int i = 0; i < Shapes.Length; i++) AssertClose(parameters[i], rig.Fused[i][k], $"lane {k} parameter {i}", 0, 0);
            using var after = rig.SaveLane(k);
            foreach (var ((name, a), (_, b)) in state.Tensors.Zip(after.Tensors)) AssertClose(a, b, $"lane {k} {name}", 0, 0);
            Assert.Equal(state.Metadata.ToJsonString(), after.Metadata.ToJsonString());
            state.Dispose();
        }
        AssertAllLanesMatch(rig, kind);

        // And stepping every lane again keeps all of them in step with their unfused optimizers
        rig.Iterate();
        rig.Iterate(new[] { 3 });
        AssertAllLanesMatch(rig, kind);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_reset_lane_behaves_as_a_fresh_optimizer(string kind)
    {
        // Given a rig after three steps
        using var rig = new Rig(kind);
        for (int i = 0; i < 3; i++) rig.Iterate();

        // When lane 1 is reset (and member 1 gets a fresh unfused optimizer on its current parameters)
        rig.Optimizer.ResetLane(1);
        rig.ReplaceMember(1, rig.Configs[1], null);
        AssertAllLanesMatch(rig, $"{kind} after reset");

        // Then three more steps keep every lane equal to its unfused optimizer
        for (int i = 0; i < 3; i++) rig.Iterate();
        AssertAllLanesMatch(rig, $"{kind} after reset and three steps");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_saved_lane_restores_into_a_fresh_unfused_optimizer_that_continues_as_the_lane(string kind)
    {
        // Given a rig after three steps and lane 2's checkpoint
        using var rig = new Rig(kind);
        for (int i = 0; i < 3; i++) rig.Iterate();
        using var state = rig.SaveLane(2);

        // When member 2 is replaced by a fresh unfused optimizer restored from the lane's checkpoint, and all continue
        rig.ReplaceMember(2, rig.Configs[2], state);
        for (int i = 0; i < 3; i++) rig.Iterate();

        // Then it continues exactly as the lane
        AssertAllLanesMatch(rig, kind);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void An_unfused_checkpoint_restored_into_a_lane_continues_as_the_unfused_optimizer(string kind)
    {
        // Given a rig after three steps and member 1's unfused checkpoint
        using var rig = new Rig(kind);
        for (int i = 0; i < 3; i++) rig.Iterate();
        using var state = TrainableState.Capture((nn.Module?)null, rig.Unfused[1]);

        // When lane 3 takes member 1's parameters, config and checkpoint (and member 3 becomes a copy of member 1)
        using (no_grad())
            foreach (var f in rig.Fused) f[3].copy_(f[1]);
        rig.Optimizer.ConfigureLane(3, rig.Configs[1]);
        rig.Optimizer.RestoreLane(3, state);
        rig.ReplaceMember(3, rig.Configs[1], state);
        AssertAllLanesMatch(rig, $"{kind} after restore");

        // Then both continue identically
        for (int i = 0; i < 3; i++) rig.Iterate();
        AssertAllLanesMatch(rig, $"{kind} after restore and three steps");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_copied_lane_continues_as_its_source(string kind)
    {
        // Given a rig after three steps
        using var rig = new Rig(kind);
        for (int i = 0; i < 3; i++) rig.Iterate();

        // When lane 0's parameters, config and optimizer state are copied into lane 2 (member 2 becomes a copy of member 0)
        using (no_grad())
            foreach (var f in rig.Fused) f[2].copy_(f[0]);
        rig.Optimizer.ConfigureLane(2, rig.Configs[0]);
        rig.Optimizer.CopyLane(0, 2);
        using (var state = TrainableState.Capture((nn.Module?)null, rig.Unfused[0]))
            rig.ReplaceMember(2, rig.Configs[0], state);
        AssertAllLanesMatch(rig, $"{kind} after copy");

        // Then it continues as member 0 would on lane 2's gradients
        for (int i = 0; i < 3; i++) rig.Iterate();
        AssertAllLanesMatch(rig, $"{kind} after copy and three steps");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Steps_under_forced_collections_give_the_same_numbers(string kind)
    {
        // Given two identical rigs
        using var quiet = new Rig(kind);
        using var collected = new Rig(kind);

        // When one steps alone and the other while a thread forces garbage collections (and one more before each step)
        const int Steps = 30;
        for (int i = 0; i < Steps; i++) quiet.Iterate();
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(0);
                Thread.Yield();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            for (int i = 0; i < Steps; i++) collected.Iterate(around: step => { GC.Collect(0); step(); });
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }

        // Then parameters and state are bit for bit the same
        for (int k = 0; k < K; k++)
        {
            for (int i = 0; i < Shapes.Length; i++) AssertClose(quiet.Fused[i][k], collected.Fused[i][k], $"lane {k} parameter {i}", 0, 0);
            using var a = quiet.SaveLane(k);
            using var b = collected.SaveLane(k);
            foreach (var ((name, x), (_, y)) in a.Tensors.Zip(b.Tensors)) AssertClose(x, y, $"lane {k} {name}", 0, 0);
        }
    }

    [Fact]
    public void A_lane_configured_for_another_optimizer_or_with_bad_values_is_refused_naming_the_key()
    {
        using var rig = new Rig("adam");
        var other = Assert.Throws<ArgumentException>(() => rig.Optimizer.ConfigureLane(0, TrialConfig.From(("optimizer", "sgd"))));
        Assert.Equal("optimizer", other.ParamName);
        var beta = Assert.Throws<ArgumentOutOfRangeException>(() => rig.Optimizer.ConfigureLane(0, TrialConfig.From(("optimizer", "adam"), ("beta1", 1.0))));
        Assert.Equal("beta1", beta.ParamName);
        var nesterov = Assert.Throws<ArgumentException>(() => SupervisedTrainable.CreateOptimizer(rig.Members[0], TrialConfig.From(("optimizer", "sgd"), ("momentum", 0.0), ("nesterov", true))));
        Assert.Equal("nesterov", nesterov.ParamName);
        Assert.Throws<InvalidOperationException>(() =>
        {
            using var fresh = FusedOptimizer.Create("adam", rig.Fused, K);
            fresh.Step(new[] { 0 });
        });
    }

    [Fact]
    public void The_unfused_optimizer_reads_the_new_keys()
    {
        // Given the same member under an SGD config with and without nesterov (and Adam with and without other betas)
        foreach (var (a, b) in new[]
        {
            (TrialConfig.From(("optimizer", "sgd"), ("lr", 0.1)), TrialConfig.From(("optimizer", "sgd"), ("lr", 0.1), ("nesterov", true))),
            (TrialConfig.From(("optimizer", "adam")), TrialConfig.From(("optimizer", "adam"), ("beta1", 0.5))),
            (TrialConfig.From(("optimizer", "adam")), TrialConfig.From(("optimizer", "adam"), ("eps", 0.1))),
            (TrialConfig.From(("optimizer", "rmsprop")), TrialConfig.From(("optimizer", "rmsprop"), ("alpha", 0.5))),
        })
        {
            using var rig = new Rig(a.GetString("optimizer"), new[] { a, b, a, b });
            rig.Iterate();
            rig.Iterate();
            // Then the two steps differ between the configs (same start, same gradient for lanes 0 and... each lane has its own)
            AssertAllLanesMatch(rig, b.ToString());
            using var sameGradient = new Rig(a.GetString("optimizer"), new[] { a, b, a, b });
            var pa = sameGradient.Members[0];
            using var oa = SupervisedTrainable.CreateOptimizer(pa, a);
            var pb = pa.Select(p => new Parameter(p.detach().clone())).ToArray();
            using var ob = SupervisedTrainable.CreateOptimizer(pb, b);
            for (int step = 0; step < 2; step++)
            {
                foreach (var (o, ps) in new[] { (oa, pa), (ob, pb) })
                {
                    o.zero_grad();
                    ps.Select(p => p.square().sum()).Aggregate((x, y) => x + y).backward();
                    o.step();
                }
            }
            Assert.False(pa[0].allclose(pb[0]), $"{b} gave the same step as {a}");
        }
    }
}
