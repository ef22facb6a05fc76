using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Data;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables.Fusion;

/// <summary>
/// A lane of a fused ConvNet array (grouped convolutions) is its trial alone: the same per-iteration metrics as
/// <see cref="ConvNetDigitsTrainable"/> with the same config and seed (losses within 1e-4 relative, accuracies within one
/// validation row), through refills, lane checkpoints restored alone and alone checkpoints restored in a lane, exploits by
/// lane copy, idle lanes and failing lanes.
/// </summary>
public sealed class FusedConvNetArrayTests
{
    private static readonly RegisteredTrainable Entry = ConvNetLanes.RegistryEntry<ConvNetDigitsTrainable>("convnet_digits");

    private static TrialConfig Config(double lr, double dropout, double weightDecay = 0, string optimizer = "adam", int channels = 4, int hidden = 16) =>
        TrialConfig.From(("lr", lr), ("dropout", dropout), ("weight_decay", weightDecay), ("optimizer", optimizer),
            ("channels", channels), ("hidden", hidden), ("batch_size", 64));

    private static string Key(TrialConfig config) => ConvNetDigitsTrainable.FusionKey(config)!;

    private static List<Dictionary<string, double>> Alone(TrialConfig config, long seed, int iterations, TrainableState? start = null, long startIteration = 0) =>
        ConvNetLanes.Alone(Entry, config, seed, iterations, start, startIteration);

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
        using var array = new ConvNetLanes(Entry, 4, Key(configs[0]));
        for (int k = 0; k < 4; k++) array.Setup(k, configs[k], seeds[k]);
        var fused = Enumerable.Range(0, 2).Select(_ => array.Step(0, 1, 2, 3)).ToList();
        for (int k = 0; k < 4; k++)
        {
            var alone = Alone(configs[k], seeds[k], 2);
            for (int i = 0; i < 2; i++)
                ConvNetLanes.AssertSame(alone[i], fused[i][k].Metrics!, $"{optimizer} lane {k} iteration {i + 1}");
        }
    }

    [Fact]
    public void TheKeyHoldsWhatFixesShapesAndDataAndNotPerLaneHyperparameters()
    {
        var a = Config(0.01, 0.1);
        Assert.Equal(Key(a), Key(Config(0.2, 0, 1e-3)));
        Assert.NotEqual(Key(a), Key(Config(0.01, 0.1, channels: 8)));
        Assert.NotEqual(Key(a), Key(Config(0.01, 0.1, hidden: 32)));
        Assert.NotEqual(Key(a), Key(Config(0.01, 0.1, optimizer: "sgd")));
        Assert.NotEqual(Key(a), Key(a.With("batch_size", 32)));
        Assert.NotEqual(Key(a), Key(a.With("data_seed", 3)));
        Assert.NotEqual(Key(a), Key(a.With("validation_fraction", 0.3)));
        Assert.NotEqual(Key(a), ConvNetFashionTrainable.FusionKey(a));
        Assert.NotEqual(ConvNetFashionTrainable.FusionKey(a), ConvNetFashionTrainable.FusionKey(a.With("train_size", 500)));
    }

    [Fact]
    public void ARefilledLaneTrainsAsItsTrialAloneWhileTheOthersContinue()
    {
        var a = Config(0.01, 0.1);
        var b = Config(0.005, 0);
        var c = Config(0.02, 0.25, 1e-4);
        using var array = new ConvNetLanes(Entry, 3, Key(a));
        array.Setup(0, a, 1);
        array.Setup(1, b, 2);
        var first = array.Step(0, 1);
        array.Program.ReleaseLane(array.Lanes[1]);
        array.Setup(1, c, 3);
        var second = array.Step(0, 1);
        var third = array.Step(0, 1);

        var aloneA = Alone(a, 1, 3);
        ConvNetLanes.AssertSame(aloneA[0], first[0].Metrics!, "a 1");
        ConvNetLanes.AssertSame(aloneA[1], second[0].Metrics!, "a 2");
        ConvNetLanes.AssertSame(aloneA[2], third[0].Metrics!, "a 3");
        ConvNetLanes.AssertSame(Alone(b, 2, 1)[0], first[1].Metrics!, "b 1");
        var aloneC = Alone(c, 3, 2);
        ConvNetLanes.AssertSame(aloneC[0], second[1].Metrics!, "c 1");
        ConvNetLanes.AssertSame(aloneC[1], third[1].Metrics!, "c 2");
    }

    [Fact]
    public void ALaneCheckpointHasTheAloneLayoutAndContinuesAlone()
    {
        var config = Config(0.01, 0.2, optimizer: "sgd");
        using var array = new ConvNetLanes(Entry, 2, Key(config));
        array.Setup(1, config, 5);
        array.Step(1);
        array.Step(1);
        using var state = ConvNetLanes.AtIteration(array.Program.SaveLane(array.Lanes[1]), 2);

        using var host = TrainableHost.Create(Entry, config, ConvNetLanes.Trial("x", 5));
        host.Train();
        host.Train();
        using var aloneState = host.Trainable.Save();
        Assert.Equal(aloneState.Tensors.Select(t => (t.Key, string.Join(",", t.Value.shape))), state.Tensors.Select(t => (t.Key, string.Join(",", t.Value.shape))));
        Assert.Contains(state.Tensors, t => t.Key == "model.0.weight" && t.Value.dim() == 4);

        var continued = array.Step(1)[0].Metrics!;
        var resumed = Alone(config, 5, 1, state, startIteration: 2);
        ConvNetLanes.AssertSame(resumed[0], continued, "restored alone");
    }

    [Fact]
    public void AnAloneCheckpointContinuesInALane()
    {
        var config = Config(0.004, 0.1, 1e-4);
        using var host = TrainableHost.Create(Entry, config, ConvNetLanes.Trial("x", 9));
        host.Train();
        host.Train();
        using var aloneState = host.Trainable.Save();
        var aloneNext = host.Train();

        using var array = new ConvNetLanes(Entry, 3, Key(config));
        array.Setup(0, Config(0.02, 0), 1);
        array.Setup(2, config, 9);
        array.Lanes[2].Iteration = 2;
        array.Program.RestoreLane(array.Lanes[2], aloneState);
        var fused = array.Step(0, 2)[1].Metrics!;
        ConvNetLanes.AssertSame(ConvNetLanes.Compared.ToDictionary(k => k, aloneNext.GetDouble), fused, "alone checkpoint in a lane");
    }

    [Fact]
    public void AnExploitCopiesTheDonorLaneAndTheNewHyperparametersApply()
    {
        var donor = Config(0.01, 0.1);
        var recipient = Config(0.0005, 0);
        var explored = Config(0.012, 0.15);
        using var array = new ConvNetLanes(Entry, 2, Key(donor));
        array.Setup(0, donor, 1);
        array.Setup(1, recipient, 2);
        array.Step(0, 1);
        array.Step(0, 1);
        using var donorState = ConvNetLanes.AtIteration(array.Program.SaveLane(array.Lanes[0]), 2);
        array.Program.CopyLane(array.Lanes[0], array.Lanes[1]);
        Assert.True(array.Program.ReconfigureLane(array.Lanes[1], explored));
        array.Lanes[1].Config = explored;
        array.Lanes[1].Trial = array.Lanes[0].Trial;
        var fused = array.Step(1)[0].Metrics!;

        // Alone: the donor's checkpoint restored into a trainable of the explored config (PBT's explore), same seed.
        using var host = TrainableHost.Create(Entry, explored, ConvNetLanes.Trial("x", 1));
        host.Restore(donorState);
        var alone = host.Train();
        ConvNetLanes.AssertSame(ConvNetLanes.Compared.ToDictionary(k => k, alone.GetDouble), fused, "exploited lane");
        Assert.False(array.Program.ReconfigureLane(array.Lanes[1], Config(0.01, 0, channels: 8)));
    }

    [Fact]
    public void ALaneNotSteppedDoesNotChange()
    {
        var config = Config(0.01, 0.1);
        using var array = new ConvNetLanes(Entry, 3, Key(config));
        array.Setup(0, config, 1);
        array.Setup(1, Config(0.02, 0.2), 2);
        array.Setup(2, Config(0.005, 0, optimizer: "adam"), 3);
        array.Step(0, 1, 2);
        using var before = array.Program.SaveLane(array.Lanes[1]);
        var alone = Alone(Config(0.005, 0), 3, 3);
        var a = array.Step(2, 0);
        var b = array.Step(2);
        using var after = array.Program.SaveLane(array.Lanes[1]);
        foreach (var ((name, x), (_, y)) in before.Tensors.Zip(after.Tensors))
            Assert.True(x.equal(y).all().item<bool>(), $"{name} changed while its lane was idle");
        // The stepped subset trains as alone (on leaf copies of its weights).
        ConvNetLanes.AssertSame(alone[1], a[0].Metrics!, "subset lane 2 iteration 2");
        ConvNetLanes.AssertSame(alone[2], b[0].Metrics!, "subset lane 2 iteration 3");
    }

    [Fact]
    public void ANonFiniteMemberFailsOnlyItsLane()
    {
        var good = Config(0.01, 0);
        using var array = new ConvNetLanes(Entry, 2, Key(good));
        array.Setup(0, good, 1);
        array.Setup(1, Config(1e30, 0), 2);
        var alone = Alone(good, 1, 3);
        Exception? failure = null;
        for (int i = 0; i < 3 && failure is null; i++)
        {
            var outcomes = array.Step(0, 1);
            ConvNetLanes.AssertSame(alone[i], outcomes[0].Metrics!, $"good lane next to a failing one, iteration {i + 1}");
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
            using var array = new ConvNetLanes(Entry, 3, Key(configs[0]));
            array.Setup(0, configs[0], 1);
            array.Setup(2, configs[1], 2);
            return new List<List<(Dictionary<string, double>?, Exception?)>> { array.Step(0, 2), array.Step(2) };
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
        Assert.Equal(quiet[0][0].Metrics, collected[0][0].Metrics);
        Assert.Equal(quiet[0][1].Metrics, collected[0][1].Metrics);
        Assert.Equal(quiet[1][0].Metrics, collected[1][0].Metrics);
    }
}

/// <summary>A test that needs the installed Fashion-MNIST files; skipped, saying how to install them, where they are missing.</summary>
public sealed class InstalledFashionMnistFactAttribute : FactAttribute
{
    public InstalledFashionMnistFactAttribute()
    {
        if (FashionMnistDataset.MissingMessage(FashionMnistDataset.DefaultDirectory) is { } missing) Skip = missing;
    }
}

/// <summary>
/// <see cref="ConvNetFashionTrainable"/> fused (pooling after each block, 28x28 images) is each trial alone; needs the installed
/// data, and runs in the collection that owns <see cref="FashionMnistDataset.DirectoryVariable"/>.
/// </summary>
[Collection("fashion-mnist")]
public sealed class FusedConvNetFashionArrayTests
{
    [InstalledFashionMnistFact]
    public void ThreeLanesTrainAsEachTrialAlone()
    {
        var entry = ConvNetLanes.RegistryEntry<ConvNetFashionTrainable>("convnet_fashion");
        TrialConfig Config(double lr, double dropout, string optimizer) => TrialConfig.From(("lr", lr), ("dropout", dropout), ("optimizer", optimizer),
            ("channels", 4), ("hidden", 16), ("batch_size", 64), ("train_size", 256));
        var configs = new[] { Config(0.01, 0, "adam"), Config(0.003, 0.2, "adam"), Config(0.02, 0.1, "adam") };
        var seeds = new long[] { 3, 4, 5 };
        using var array = new ConvNetLanes(entry, 3, ConvNetFashionTrainable.FusionKey(configs[0])!);
        for (int k = 0; k < 3; k++) array.Setup(k, configs[k], seeds[k]);
        var fused = Enumerable.Range(0, 2).Select(_ => array.Step(0, 1, 2)).ToList();
        for (int k = 0; k < 3; k++)
        {
            var alone = ConvNetLanes.Alone(entry, configs[k], seeds[k], 2);
            for (int i = 0; i < 2; i++)
                ConvNetLanes.AssertSame(alone[i], fused[i][k].Metrics!, $"fashion lane {k} iteration {i + 1}", validationRows: 10_000);
        }
    }
}

/// <summary>A fused array of a registered ConvNet trainable with its lanes, and the same trials alone.</summary>
internal sealed class ConvNetLanes : IDisposable
{
    private const double Tolerance = 1e-4;
    public static readonly string[] Compared = { "loss", "val_loss", "val_accuracy", "mean_accuracy", "lr" };

    public ConvNetLanes(RegisteredTrainable entry, int capacity, string key)
    {
        Program = entry.CreateFusedArray!(new FusedArrayContext { ArrayId = "a0", Key = key, Capacity = capacity, Slot = Slot() });
        Lanes = Enumerable.Range(0, capacity).Select(i => new FusedLane(i)).ToArray();
    }

    public FusedTrainable Program { get; }

    public FusedLane[] Lanes { get; }

    public static RegisteredTrainable RegistryEntry<T>(string name) where T : Trainable, new()
    {
        var registry = new TrainableRegistry();
        registry.Register<T>(name);
        return registry.Get(name);
    }

    public static DeviceSlot Slot() => new DeviceSlotAllocator(DeviceInventory.Simulated(1)).TryAllocate(new Resources(cpu: 1), "array")!;

    public static TrainableContext Trial(string id, long seed) => new() { TrialId = id, Slot = Slot(), Seed = seed };

    /// <summary>Each iteration's metrics of the config trained alone from <paramref name="start"/> (or fresh).</summary>
    public static List<Dictionary<string, double>> Alone(RegisteredTrainable entry, TrialConfig config, long seed, int iterations, TrainableState? start = null, long startIteration = 0)
    {
        using var host = TrainableHost.Create(entry, config, Trial("alone", seed));
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
    public static TrainableState AtIteration(TrainableState state, long iteration)
    {
        state.Metadata["host_counters"] = new System.Text.Json.Nodes.JsonObject { ["iteration"] = iteration, ["time_total"] = 0.0 };
        return state;
    }

    /// <summary>Losses within 1e-4 relative, accuracies within one of <paramref name="validationRows"/> (the digits split's 360).</summary>
    public static void AssertSame(Dictionary<string, double> alone, Dictionary<string, double> fused, string what, int validationRows = 360)
    {
        foreach (var key in Compared)
        {
            double a = alone[key], f = fused[key];
            double tolerance = key.Contains("accuracy") ? 1.5 / validationRows : Tolerance * Math.Max(1, Math.Abs(a));
            Assert.True(Math.Abs(a - f) <= tolerance, $"{what}: {key} alone {a:R}, fused {f:R}");
        }
    }

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
