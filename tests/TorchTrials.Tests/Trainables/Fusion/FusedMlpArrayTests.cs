using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables.Fusion;

/// <summary>
/// A lane of a fused MLP array is its trial alone: the same per-iteration metrics as <see cref="MlpDigitsTrainable"/> with the
/// same config and seed (losses within 1e-4 relative, accuracies equal to one validation row), through refills, lane
/// checkpoints restored alone and alone checkpoints restored in a lane, exploits by lane copy, idle lanes and failing lanes.
/// </summary>
public sealed class FusedMlpArrayTests
{
    private const double Tolerance = 1e-4;
    private static readonly string[] Compared = { "loss", "val_loss", "val_accuracy", "mean_accuracy", "lr" };

    private static TrialConfig Config(double lr, double dropout, double weightDecay = 0, string optimizer = "adam", int width = 32, int depth = 2) =>
        TrialConfig.From(("lr", lr), ("dropout", dropout), ("weight_decay", weightDecay), ("optimizer", optimizer),
            ("width", width), ("depth", depth), ("batch_size", 64));

    private static readonly RegisteredTrainable Entry = RegistryEntry();

    private static RegisteredTrainable RegistryEntry()
    {
        var registry = new TrainableRegistry();
        registry.Register<MlpDigitsTrainable>("mlp_digits");
        return registry.Get("mlp_digits");
    }

    private static DeviceSlot Slot() => new DeviceSlotAllocator(DeviceInventory.Simulated(1)).TryAllocate(new Resources(cpu: 1), "array")!;

    private static TrainableContext Trial(string id, long seed) => new() { TrialId = id, Slot = Slot(), Seed = seed };

    /// <summary>Each iteration's metrics of the config trained alone from <paramref name="start"/> (or fresh).</summary>
    private static List<Dictionary<string, double>> Alone(TrialConfig config, long seed, int iterations, TrainableState? start = null, long startIteration = 0)
    {
        using var host = TrainableHost.Create(Entry, config, Trial("alone", seed));
        if (start is not null) host.Restore(start);
        var results = new List<Dictionary<string, double>>();
        for (int i = 0; i < iterations; i++)
        {
            var r = host.Train();
            results.Add(Compared.ToDictionary(k => k, r.GetDouble));
        }
        Assert.Equal(startIteration + iterations, host.Iteration);
        return results;
    }

    /// <summary>The iteration a lane checkpoint belongs to, as the fused array's host writes it (the array itself does not count).</summary>
    private static TrainableState AtIteration(TrainableState state, long iteration)
    {
        state.Metadata["host_counters"] = new System.Text.Json.Nodes.JsonObject { ["iteration"] = iteration, ["time_total"] = 0.0 };
        return state;
    }

    private sealed class Array : IDisposable
    {
        public Array(int capacity, string key)
        {
            Program = Entry.CreateFusedArray!(new FusedArrayContext { ArrayId = "a0", Key = key, Capacity = capacity, Slot = Slot() });
            Lanes = Enumerable.Range(0, capacity).Select(i => new FusedLane(i)).ToArray();
        }

        public FusedTrainable Program { get; }

        public FusedLane[] Lanes { get; }

        public void Setup(int lane, TrialConfig config, long seed)
        {
            Lanes[lane].Trial = Trial($"t{lane}", seed);
            Lanes[lane].Config = config;
            Lanes[lane].Iteration = 0;
            Program.SetupLane(Lanes[lane]);
        }

        /// <summary>One step of <paramref name="lanes"/>: each lane's metrics, or its error.</summary>
        public List<(Dictionary<string, double>? Metrics, Exception? Error)> Step(params int[] lanes)
        {
            using var scope = NewDisposeScope();
            var members = lanes.Select(i => Lanes[i]).ToList();
            var outcomes = Program.Step(members);
            var read = new List<(Dictionary<string, double>?, Exception?)>();
            foreach (var (metrics, error) in outcomes)
            {
                if (metrics is null)
                {
                    read.Add((null, error));
                    continue;
                }
                var values = new Dictionary<string, double>();
                foreach (var (key, value) in metrics.Entries)
                {
                    values[key] = value is Tensor t ? t.to(ScalarType.Float64).item<double>() : Convert.ToDouble(value);
                    (value as Tensor)?.Dispose();
                }
                read.Add((values, null));
            }
            foreach (var m in members) m.Iteration++;
            return read;
        }

        public void Dispose() => Program.Dispose();
    }

    private static void AssertSame(Dictionary<string, double> alone, Dictionary<string, double> fused, string what)
    {
        foreach (var key in Compared)
        {
            double a = alone[key], f = fused[key];
            double tolerance = key.Contains("accuracy") ? 1.5 / 360 : Tolerance * Math.Max(1, Math.Abs(a));
            Assert.True(Math.Abs(a - f) <= tolerance, $"{what}: {key} alone {a:R}, fused {f:R}");
        }
    }

    public static TheoryData<string> Optimizers => new() { "adam", "adamw", "sgd", "rmsprop" };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void FourLanesTrainAsEachTrialAlone(string optimizer)
    {
        // RMSprop's first steps are about lr in size whatever the gradient: smaller rates keep float rounding from growing.
        double scale = optimizer == "rmsprop" ? 0.1 : 1;
        var configs = new[]
        {
            Config(0.01 * scale, 0, optimizer: optimizer),
            Config(0.003 * scale, 0.2, 1e-4, optimizer),
            Config(0.03 * scale, 0.1, optimizer: optimizer),
            Config(0.001 * scale, 0, 1e-3, optimizer),
        };
        var seeds = new long[] { 11, 22, 33, 44 };
        using var array = new Array(4, MlpDigitsTrainable.FusionKey(configs[0])!);
        for (int k = 0; k < 4; k++) array.Setup(k, configs[k], seeds[k]);
        var fused = Enumerable.Range(0, 3).Select(_ => array.Step(0, 1, 2, 3)).ToList();
        for (int k = 0; k < 4; k++)
        {
            var alone = Alone(configs[k], seeds[k], 3);
            for (int i = 0; i < 3; i++)
                AssertSame(alone[i], fused[i][k].Metrics!, $"{optimizer} lane {k} iteration {i + 1}");
        }
    }

    [Fact]
    public void ARefilledLaneTrainsAsItsTrialAloneWhileTheOthersContinue()
    {
        var a = Config(0.01, 0.1);
        var b = Config(0.005, 0);
        var c = Config(0.02, 0.25, 1e-4);
        using var array = new Array(3, MlpDigitsTrainable.FusionKey(a)!);
        array.Setup(0, a, 1);
        array.Setup(1, b, 2);
        var first = array.Step(0, 1);
        array.Program.ReleaseLane(array.Lanes[1]);
        array.Setup(1, c, 3);
        var second = array.Step(0, 1);
        var third = array.Step(0, 1);

        var aloneA = Alone(a, 1, 3);
        AssertSame(aloneA[0], first[0].Metrics!, "a 1");
        AssertSame(aloneA[1], second[0].Metrics!, "a 2");
        AssertSame(aloneA[2], third[0].Metrics!, "a 3");
        AssertSame(Alone(b, 2, 1)[0], first[1].Metrics!, "b 1");
        var aloneC = Alone(c, 3, 2);
        AssertSame(aloneC[0], second[1].Metrics!, "c 1");
        AssertSame(aloneC[1], third[1].Metrics!, "c 2");
    }

    [Fact]
    public void ALaneCheckpointHasTheAloneLayoutAndContinuesAlone()
    {
        var config = Config(0.01, 0.2, optimizer: "sgd");
        using var array = new Array(2, MlpDigitsTrainable.FusionKey(config)!);
        array.Setup(1, config, 5);
        array.Step(1);
        array.Step(1);
        using var state = AtIteration(array.Program.SaveLane(array.Lanes[1]), 2);

        using var host = TrainableHost.Create(Entry, config, Trial("x", 5));
        host.Train();
        host.Train();
        using var aloneState = host.Trainable.Save();
        Assert.Equal(aloneState.Tensors.Select(t => (t.Key, string.Join(",", t.Value.shape))), state.Tensors.Select(t => (t.Key, string.Join(",", t.Value.shape))));

        var continued = array.Step(1)[0].Metrics!;
        var resumed = Alone(config, 5, 1, state, startIteration: 2);
        AssertSame(resumed[0].ToDictionary(kv => kv.Key, kv => kv.Value), continued, "restored alone");
    }

    [Fact]
    public void AnAloneCheckpointContinuesInALane()
    {
        var config = Config(0.004, 0.1, 1e-4);
        using var host = TrainableHost.Create(Entry, config, Trial("x", 9));
        host.Train();
        host.Train();
        using var aloneState = host.Trainable.Save();
        var aloneNext = host.Train();

        using var array = new Array(3, MlpDigitsTrainable.FusionKey(config)!);
        array.Setup(0, Config(0.02, 0), 1);
        array.Setup(2, config, 9);
        array.Lanes[2].Iteration = 2;
        array.Program.RestoreLane(array.Lanes[2], aloneState);
        var fused = array.Step(0, 2)[1].Metrics!;
        AssertSame(Compared.ToDictionary(k => k, aloneNext.GetDouble), fused, "alone checkpoint in a lane");
    }

    [Fact]
    public void AnExploitCopiesTheDonorLaneAndTheNewHyperparametersApply()
    {
        var donor = Config(0.01, 0.1);
        var recipient = Config(0.0005, 0);
        var explored = Config(0.012, 0.15);
        using var array = new Array(2, MlpDigitsTrainable.FusionKey(donor)!);
        array.Setup(0, donor, 1);
        array.Setup(1, recipient, 2);
        array.Step(0, 1);
        array.Step(0, 1);
        using var donorState = AtIteration(array.Program.SaveLane(array.Lanes[0]), 2);
        array.Program.CopyLane(array.Lanes[0], array.Lanes[1]);
        Assert.True(array.Program.ReconfigureLane(array.Lanes[1], explored));
        array.Lanes[1].Config = explored;
        array.Lanes[1].Trial = array.Lanes[0].Trial;
        var fused = array.Step(1)[0].Metrics!;

        // Alone: the donor's checkpoint restored into a trainable reset to the explored config (PBT's explore), same seed.
        using var host = TrainableHost.Create(Entry, explored, Trial("x", 1));
        host.Restore(donorState);
        var alone = host.Train();
        AssertSame(Compared.ToDictionary(k => k, alone.GetDouble), fused, "exploited lane");
        Assert.False(array.Program.ReconfigureLane(array.Lanes[1], Config(0.01, 0, width: 64)));
    }

    [Fact]
    public void TheFashionKeyHoldsTheDataSplitTheUnfusedTrainableLoads()
    {
        // Every lane trains on its array's one copy of the data: configs that load different rows must not share a key.
        // Seen: train_size was not in the mlp_fashion key, and a config without validation_fraction (1/6 for Fashion-MNIST)
        // had the key of one with 0.2, so either trial could train in an array loaded for the other's split.
        static string Key(params (string, object?)[] pairs) => MlpFashionTrainable.FusionKey(TrialConfig.From(pairs.Prepend(("width", 32)).ToArray()))!;

        Assert.NotEqual(Key(("train_size", 1000)), Key(("train_size", 2000)));
        Assert.NotEqual(Key(("train_size", 1000)), Key());
        Assert.NotEqual(Key(), Key(("validation_fraction", 0.2)));
        Assert.Equal(Key(), Key(("validation_fraction", FashionClassifier.DefaultValidationFraction)));
        Assert.Equal(Key(("train_size", 1000), ("lr", 0.1)), Key(("train_size", 1000), ("lr", 0.01)));
        // The digits trainable has no train_size and splits 0.2 unless told.
        Assert.Equal(MlpDigitsTrainable.FusionKey(TrialConfig.From(("validation_fraction", 0.2)))!, MlpDigitsTrainable.FusionKey(TrialConfig.Empty)!);
    }

    [Fact]
    public void ALaneNotSteppedDoesNotChange()
    {
        var config = Config(0.01, 0.1);
        using var array = new Array(2, MlpDigitsTrainable.FusionKey(config)!);
        array.Setup(0, config, 1);
        array.Setup(1, Config(0.02, 0.2), 2);
        array.Step(0, 1);
        using var before = array.Program.SaveLane(array.Lanes[1]);
        array.Step(0);
        array.Step(0);
        using var after = array.Program.SaveLane(array.Lanes[1]);
        foreach (var ((name, x), (_, y)) in before.Tensors.Zip(after.Tensors))
            Assert.True(x.equal(y).all().item<bool>(), $"{name} changed while its lane was idle");
    }

    [Fact]
    public void ANonFiniteMemberFailsOnlyItsLane()
    {
        var good = Config(0.01, 0);
        using var array = new Array(2, MlpDigitsTrainable.FusionKey(good)!);
        array.Setup(0, good, 1);
        array.Setup(1, Config(1e30, 0), 2);
        var alone = Alone(good, 1, 3);
        Exception? failure = null;
        for (int i = 0; i < 3 && failure is null; i++)
        {
            var outcomes = array.Step(0, 1);
            AssertSame(alone[i], outcomes[0].Metrics!, $"good lane next to a failing one, iteration {i + 1}");
            failure = outcomes[1].Error;
        }
        Assert.NotNull(failure);
        Assert.Contains("not finite", failure.Message);
    }

    [Fact]
    public async Task FusedStepsUnderForcedCollectionsGiveTheSameNumbers()
    {
        var configs = new[] { Config(0.01, 0.1), Config(0.003, 0.2, 1e-4) };
        List<List<(Dictionary<string, double>? Metrics, Exception? Error)>> Run()
        {
            using var array = new Array(2, MlpDigitsTrainable.FusionKey(configs[0])!);
            array.Setup(0, configs[0], 1);
            array.Setup(1, configs[1], 2);
            return Enumerable.Range(0, 2).Select(_ => array.Step(0, 1)).ToList();
        }
        var quiet = Run();
        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        var collected = Run();
        stop.Cancel();
        await collector;
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 2; k++)
                Assert.Equal(quiet[i][k].Metrics, collected[i][k].Metrics);
    }
}
