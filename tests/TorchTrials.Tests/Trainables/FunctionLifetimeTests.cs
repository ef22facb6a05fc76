using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables;

/// <summary>
/// Issue 11, item 2: tensors a training function builds before its loop (its data, its model) were freed at its first
/// yield, so every trial died with "Tensor invalid -- empty handle"; Setup's tensors had no owner at all.
/// </summary>
public class FunctionLifetimeTests
{
    [Fact]
    public void A_function_that_builds_its_data_and_model_before_its_loop_trains_every_iteration_on_the_inline_executor()
    {
        // Given two trials of a function written the natural way, sharing the controller's thread
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("fit", LinearFit.Train);
        using var h = new Harness(cpus: 2, registry: registry);
        var trials = Enumerable.Range(0, 2).Select(i => new Trial("fit", trialId: $"f{i}", stop: Stop.AfterIterations(8))).ToArray();
        h.Add(trials);

        // When the experiment runs to its end
        h.RunToEnd();

        // Then both trained all 8 iterations without an error and their loss went down
        Assert.All(trials, t =>
        {
            Assert.Null(t.ErrorMessage);
            Assert.Equal(TrialStatus.Terminated, t.Status);
            Assert.Equal(8, t.LastResult!.TrainingIteration);
            Assert.True(t.LastResult.GetDouble("loss") < t.LastResult.GetDouble("first_loss"));
        });
    }

    [Fact]
    public void Per_step_temporaries_are_freed_each_step_and_the_functions_own_tensors_when_it_is_disposed()
    {
        // Given a host running the natural function on this thread, counted by TorchSharp's per-thread live tensors
        var entry = TrainableRegistry.CreateDefault().RegisterFunction("fit", LinearFit.Train).Get("fit");
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var host = TrainableHost.Create(entry, TrialConfig.Empty, Context());

        // When it trains 3 steps, then 20 more
        for (int i = 0; i < 3; i++) host.Train();
        long afterThree = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 20; i++) host.Train();
        long afterTwentyThree = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        host.Dispose();
        long afterDispose = DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        // Then the 20 steps left nothing behind, the function's data and model were alive until disposal, and then freed
        Assert.True(afterThree > before, $"the function's tensors should be alive after 3 steps ({before} before, {afterThree} after)");
        Assert.Equal(afterThree, afterTwentyThree);
        Assert.Equal(before, afterDispose);
    }

    [Fact]
    public void A_functions_tensors_are_freed_when_it_returns_before_the_trainable_is_disposed()
    {
        // Given a function that builds a tensor before its loop and returns after 3 iterations
        var entry = TrainableRegistry.CreateDefault().RegisterFunction("three", (c, ctx) => Three()).Get("three");
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using var host = TrainableHost.Create(entry, TrialConfig.Empty, Context());

        // When it runs its 3 iterations and then returns
        var sums = Enumerable.Range(0, 3).Select(_ => host.Train().GetDouble("sum")).ToList();
        long whileRunning = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var end = host.Train();

        // Then its tensor was alive for every iteration and is freed once it has returned
        Assert.Equal(new[] { 3.0, 3, 3 }, sums);
        Assert.True(end.Done);
        Assert.True(whileRunning > before);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        static IEnumerable<Metrics> Three()
        {
            var data = ones(3);
            for (int i = 0; i < 3; i++) yield return new Metrics { { "sum", data.sum() } };
        }
    }

    [Fact]
    public void Setup_tensors_built_without_a_scope_or_detach_live_through_steps_and_are_freed_at_dispose()
    {
        // Given a class trainable whose Setup builds its tensors with no scope and no DetachFromDisposeScope
        var entry = TrainableRegistry.CreateDefault().Register<SetupBuilt>("setup_built").Get("setup_built");
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var host = TrainableHost.Create(entry, TrialConfig.Empty, Context());
        var trainable = (SetupBuilt)host.Trainable;

        // When it trains 5 steps and is then disposed
        var sums = Enumerable.Range(0, 5).Select(_ => host.Train().GetDouble("sum")).ToList();
        host.Dispose();

        // Then every step read Setup's tensors (0 + 1 + 2, times 2), and disposing freed them and Setup's temporaries
        Assert.All(sums, s => Assert.Equal(6.0, s));
        Assert.True(trainable.Weights.IsInvalid, "Setup's tensor should be freed when the trainable is disposed");
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void A_tensor_created_after_the_first_yield_and_used_in_a_later_step_fails_with_an_error_naming_the_rule()
    {
        // Given a function that creates its running total after its first yield, without keeping it
        var entry = TrainableRegistry.CreateDefault().RegisterFunction("late", (c, ctx) => LateTotal(ctx, keep: false)).Get("late");
        using var host = TrainableHost.Create(entry, TrialConfig.Empty, Context());
        host.Train();
        host.Train();

        // When the next step uses it
        var error = Assert.Throws<InvalidOperationException>(() => host.Train());

        // Then the error says which tensors are freed when, and how to keep one
        Assert.Contains("created later are freed when their step yields", error.Message);
        Assert.Contains("context.Keep(tensor)", error.Message);
    }

    [Fact]
    public void A_tensor_passed_to_Keep_after_the_first_yield_lives_until_the_function_ends()
    {
        // Given the same function, keeping its running total
        var entry = TrainableRegistry.CreateDefault().RegisterFunction("late", (c, ctx) => LateTotal(ctx, keep: true)).Get("late");
        using var host = TrainableHost.Create(entry, TrialConfig.Empty, Context());

        // When it trains 6 steps
        var totals = Enumerable.Range(0, 6).Select(_ => host.Train().GetDouble("total")).ToList();

        // Then the total grew by one each step after the second
        Assert.Equal(new[] { 0.0, 1, 2, 3, 4, 5 }, totals);
    }

    private static IEnumerable<Metrics> LateTotal(FunctionContext context, bool keep)
    {
        yield return new Metrics { { "total", 0.0 } };
        var total = zeros(1);
        if (keep) context.Keep(total);
        using var one = 1.0.ToScalar();
        for (; ; )
        {
            total.add_(one);
            yield return new Metrics { { "total", total.item<float>() } };
        }
    }

    private static TrainableContext Context() =>
        new() { TrialId = "t", Slot = new DeviceSlotAllocator(DeviceInventory.Simulated(1)).TryAllocate(new Resources(cpu: 1), "t")!, Seed = 1 };

    public sealed class SetupBuilt : Trainable
    {
        public Tensor Weights { get; private set; } = null!;

        public override void Setup(TrialConfig config)
        {
            using var two = 2.0.ToScalar();
            Weights = arange(3, ScalarType.Float32).mul(two);
        }

        public override Metrics Step() => new() { { "sum", Weights.sum() } };
    }
}

/// <summary>A training function written as a researcher would: data and model before the loop, no scopes of its own.</summary>
internal static class LinearFit
{
    public static IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
    {
        var generator = new Generator((ulong)context.Trial.Seed);
        var x = randn(64, 4, generator: generator);
        var y = x.matmul(tensor(new float[] { 1, -2, 3, 0.5f }).reshape(4, 1));
        // TorchSharp detaches a module's parameters from every scope: the module owns them, freed by its own disposal.
        using var model = nn.Linear(4, 1);
        var optimizer = new Sgd(model.parameters(), lr: 0.1);
        double? first = null;
        while (true)
        {
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.forward(x), y);
            loss.backward();
            optimizer.step();
            first ??= loss.item<float>();
            yield return new Metrics { { "loss", loss }, { "first_loss", first.Value } };
        }
    }
}
