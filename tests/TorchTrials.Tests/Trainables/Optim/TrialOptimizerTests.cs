using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables.Optim;

/// <summary>TorchTrials' optimizers against TorchSharp's on one fixed problem, and through checkpoints.</summary>
public class TrialOptimizerTests
{
    // A 6-4-3 MLP with fixed weights, fit to fixed data by mean squared error (every parameter gets a gradient).
    private static nn.Module<Tensor, Tensor> Model()
    {
        var model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3));
        using var generator = new Generator(42, CPU);
        using var _ = no_grad();
        foreach (var p in model.parameters())
        {
            using var values = randn(p.shape, generator: generator);
            p.copy_(values);
        }
        return model;
    }

    private static void Train(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, int steps)
    {
        using var generator = new Generator(7, CPU);
        using var x = randn(new long[] { 16, 6 }, generator: generator);
        using var y = randn(new long[] { 16, 3 }, generator: generator);
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            nn.functional.mse_loss(model.forward(x), y).backward();
            optimizer.step();
        }
    }

    public static TheoryData<string> Optimizers => new() { "adam", "adam_l2", "adamw", "sgd", "sgd_nesterov", "sgd_dampened", "rmsprop", "rmsprop_momentum" };

    private static optim.Optimizer Ours(string name, IEnumerable<TorchSharp.Modules.Parameter> p) => name switch
    {
        "adam" => new Adam(p, lr: 0.05),
        "adam_l2" => new Adam(p, lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1),
        "adamw" => new AdamW(p, lr: 0.05, weight_decay: 0.1),
        "sgd" => new Sgd(p, lr: 0.1, momentum: 0.9, weight_decay: 0.01),
        "sgd_nesterov" => new Sgd(p, lr: 0.1, momentum: 0.9, nesterov: true),
        "sgd_dampened" => new Sgd(p, lr: 0.1, momentum: 0.5, dampening: 0.3),
        "rmsprop" => new RmsProp(p, lr: 0.01, weight_decay: 0.01),
        "rmsprop_momentum" => new RmsProp(p, lr: 0.01, alpha: 0.9, momentum: 0.9),
        _ => throw new ArgumentException(name),
    };

    private static optim.Optimizer TorchSharps(string name, IEnumerable<TorchSharp.Modules.Parameter> p) => name switch
    {
        "adam" => optim.Adam(p, lr: 0.05),
        "adam_l2" => optim.Adam(p, lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1),
        "adamw" => optim.AdamW(p, lr: 0.05, weight_decay: 0.1),
        "sgd" => optim.SGD(p, 0.1, momentum: 0.9, weight_decay: 0.01),
        "sgd_nesterov" => optim.SGD(p, 0.1, momentum: 0.9, nesterov: true),
        "sgd_dampened" => optim.SGD(p, 0.1, momentum: 0.5, dampening: 0.3),
        "rmsprop" => optim.RMSProp(p, lr: 0.01, weight_decay: 0.01),
        "rmsprop_momentum" => optim.RMSProp(p, lr: 0.01, alpha: 0.9, momentum: 0.9),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void Ours_take_the_same_steps_as_TorchSharps_optimizer_on_a_fixed_problem(string name)
    {
        // Given two copies of one model, one trained by our optimizer and one by TorchSharp's with the same settings
        using var ours = Model();
        using var theirs = Model();
        using var ourOptimizer = Ours(name, ours.parameters());
        using var theirOptimizer = TorchSharps(name, theirs.parameters());

        // When both take ten steps on the same data
        Train(ours, ourOptimizer, 10);
        Train(theirs, theirOptimizer, 10);

        // Then the parameters agree to float rounding (Adam's first moment uses lerp_ as PyTorch does, TorchSharp mul_/add_),
        // and they moved away from the start
        using var start = Model();
        foreach (var ((a, b), s) in ours.parameters().Zip(theirs.parameters()).Zip(start.parameters()))
        {
            Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-6), $"{name}: max difference {(a - b).abs().max().item<float>()}");
            Assert.False(a.allclose(s), $"{name}: a parameter did not move");
        }
    }

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void A_captured_state_restored_into_a_fresh_model_and_optimizer_continues_identically(string name)
    {
        // Given a model trained three steps and its captured state
        using var original = Model();
        using var originalOptimizer = Ours(name, original.parameters());
        Train(original, originalOptimizer, 3);
        using var state = TrainableState.Capture(original, originalOptimizer);

        // When a fresh model and optimizer, trained differently, are restored from it and both train two more steps
        using var restored = Model();
        using var restoredOptimizer = Ours(name, restored.parameters());
        Train(restored, restoredOptimizer, 5);
        state.RestoreInto(restored, restoredOptimizer);
        Train(original, originalOptimizer, 2);
        Train(restored, restoredOptimizer, 2);

        // Then parameters and optimizer state are identical, step counts included
        foreach (var (a, b) in original.parameters().Zip(restored.parameters()))
            Assert.True(a.allclose(b, rtol: 0, atol: 0), $"{name}: parameters differ after restore");
        using var after = TrainableState.Capture(original, originalOptimizer);
        using var afterRestored = TrainableState.Capture(restored, restoredOptimizer);
        Assert.Equal(after.Tensors.Select(t => t.Key), afterRestored.Tensors.Select(t => t.Key));
        foreach (var ((_, a), (_, b)) in after.Tensors.Zip(afterRestored.Tensors))
            Assert.True(a.allclose(b, rtol: 0, atol: 0), $"{name}: state differs after restore");
        Assert.Equal(after.Metadata["optimizer_state"]!.ToJsonString(), afterRestored.Metadata["optimizer_state"]!.ToJsonString());
    }

    [Fact]
    public void Adam_state_is_checkpointed_under_the_names_TorchSharps_adam_used()
    {
        // Given our Adam after one step
        using var model = Model();
        using var optimizer = new Adam(model.parameters());
        Train(model, optimizer, 1);

        // When its state is captured
        using var state = TrainableState.Capture(model, optimizer);

        // Then the tensors and counters carry PyTorch's (and TorchSharp's) names, so older checkpoints restore into it
        Assert.Contains("optimizer.0.exp_avg", state.Tensors.Select(t => t.Key));
        Assert.Contains("optimizer.3.exp_avg_sq", state.Tensors.Select(t => t.Key));
        Assert.Equal(1L, state.Metadata["optimizer_state"]!["optimizer.0.step"]!.GetValue<long>());
    }
}
