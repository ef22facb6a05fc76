using System.Diagnostics;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using Xunit.Abstractions;

namespace TorchTrials.IntegrationTests.Trainables;

public class BuiltinTrainableTests(ITestOutputHelper output)
{
    internal static TrainableHost Host(string name, TrialConfig config, long seed = 1)
    {
        var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(2));
        var slot = allocator.TryAllocate(new Resources(cpu: 1), "t")!;
        return TrainableHost.Create(TrainableRegistry.CreateDefault().Get(name), config,
            new TrainableContext { TrialId = "t", Slot = slot, Seed = seed });
    }

    [Fact]
    public void The_digits_mlp_reaches_95_percent_validation_accuracy_within_20_epochs()
    {
        using var host = Host("mlp_digits", TrialConfig.From(("lr", 3e-3), ("width", 128), ("depth", 2), ("batch_size", 64)));
        var clock = Stopwatch.StartNew();
        double best = 0;
        for (int i = 0; i < 20; i++) best = Math.Max(best, host.Train().GetDouble("val_accuracy"));
        output.WriteLine($"20 epochs in {clock.Elapsed.TotalSeconds:0.00} s, best val_accuracy {best:0.000}");
        Assert.True(best >= 0.95, $"best validation accuracy {best}");
    }

    [Fact]
    public void The_digits_convnet_learns()
    {
        using var host = Host("convnet_digits", TrialConfig.From(("lr", 3e-3), ("channels", 8), ("batch_size", 64)));
        double best = 0;
        for (int i = 0; i < 8; i++) best = Math.Max(best, host.Train().GetDouble("val_accuracy"));
        Assert.True(best >= 0.9, $"best validation accuracy {best}");
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("sgd")]
    [InlineData("rmsprop")]
    public void A_restored_state_continues_exactly_where_the_saved_one_was(string optimizer)
    {
        var config = TrialConfig.From(("lr", 1e-2), ("width", 32), ("depth", 1), ("optimizer", optimizer));
        using var original = Host("mlp_digits", config, seed: 7);
        original.Train();
        original.Train();
        using var saved = original.Save();
        var expected = original.Train();

        using var fresh = Host("mlp_digits", config, seed: 7);
        fresh.Train();
        fresh.Train();
        fresh.Train();
        fresh.Train();
        fresh.Restore(saved);
        var actual = fresh.Train();

        Assert.Equal(3, actual.TrainingIteration);
        Assert.Equal(expected.GetDouble("loss"), actual.GetDouble("loss"), 5);
        Assert.Equal(expected.GetDouble("val_loss"), actual.GetDouble("val_loss"), 5);
    }

    [Fact]
    public void A_persistent_checkpoint_round_trips_through_safetensors_files()
    {
        var config = TrialConfig.From(("lr", 1e-2), ("width", 16), ("depth", 1));
        using var original = Host("mlp_digits", config, seed: 3);
        original.Train();
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-tests", Guid.NewGuid().ToString("N"));
        try
        {
            using (var state = original.Save())
                PersistentCheckpoint.Write(dir, state, null);
            var expected = original.Train();

            using var fresh = Host("mlp_digits", config, seed: 3);
            fresh.Train();
            fresh.Train();
            fresh.Restore(PersistentCheckpoint.Open(dir));
            var actual = fresh.Train();
            Assert.Equal(expected.GetDouble("val_loss"), actual.GetDouble("val_loss"), 5);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
