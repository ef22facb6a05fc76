using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.IntegrationTests.Trainables;

/// <summary>Same seed, same metrics: the built-in trainables with dropout, trained alone, at once, and restored.</summary>
public class ReproducibilityTests
{
    private static readonly TrialConfig DropoutMlp =
        TrialConfig.From(("lr", 3e-3), ("width", 64), ("depth", 2), ("dropout", 0.3), ("batch_size", 64));

    private static readonly string[] Keys = { "loss", "val_loss", "val_accuracy" };

    private static TrainableHost Host(string name, TrialConfig config, long seed)
    {
        var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(2));
        var slot = allocator.TryAllocate(new Resources(cpu: 1), "t")!;
        return TrainableHost.Create(TrainableRegistry.CreateDefault().Get(name), config,
            new TrainableContext { TrialId = "t", Slot = slot, Seed = seed });
    }

    private static double[] Values(TrialResult result) => Keys.Select(result.GetDouble).ToArray();

    /// <summary>Runs <paramref name="work"/> on a thread of its own with one LibTorch thread, as a 1-CPU trial runs.</summary>
    private static Task<T> OnTrialThread<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>();
        new Thread(() =>
        {
            try
            {
                torch.set_num_threads(1);
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }).Start();
        return done.Task;
    }

    /// <summary>The metrics of the first <paramref name="epochs"/> epochs of a fresh trial.</summary>
    private static Task<List<double[]>> Train(string name, TrialConfig config, long seed, int epochs) => OnTrialThread(() =>
    {
        using var host = Host(name, config, seed);
        var metrics = new List<double[]>();
        for (int i = 0; i < epochs; i++) metrics.Add(Values(host.Train()));
        return metrics;
    });

    [Theory]
    [InlineData("mlp_digits")]
    [InlineData("convnet_digits")]
    public async Task Two_trials_with_dropout_trained_at_once_report_exactly_what_each_reports_alone(string trainable)
    {
        var config = trainable == "mlp_digits" ? DropoutMlp
            : TrialConfig.From(("lr", 3e-3), ("channels", 4), ("hidden", 32), ("dropout", 0.3), ("batch_size", 64));
        const int epochs = 3;

        // Given each trial's metrics when it trains alone
        var alone1 = await Train(trainable, config, 1, epochs);
        var alone2 = await Train(trainable, config, 2, epochs);

        // When both train at the same time
        var together = await Task.WhenAll(Train(trainable, config, 1, epochs), Train(trainable, config, 2, epochs));
        var (together1, together2) = (together[0], together[1]);

        // Then every metric of every epoch is bit for bit the same, and the two seeds do differ
        Assert.Equal(alone1, together1);
        Assert.Equal(alone2, together2);
        Assert.NotEqual(alone1, alone2);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_restored_trial_with_dropout_replays_the_epochs_after_its_checkpoint_exactly(bool throughFiles)
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var (expected, actual) = await OnTrialThread(() =>
            {
                // Given a trial saved after 2 epochs, which then trains 2 more
                using var original = Host("mlp_digits", DropoutMlp, seed: 7);
                original.Train();
                original.Train();
                Checkpoint checkpoint = throughFiles
                    ? WriteAndDispose(dir, original.Save())
                    : MemoryCheckpoint.FromState(original.Save(), null);
                var expected = new[] { Values(original.Train()), Values(original.Train()) };

                // When the trial is rebuilt (as after a failure or a resume), trains 3 epochs and restores that checkpoint
                using var restarted = Host("mlp_digits", DropoutMlp, seed: 7);
                for (int i = 0; i < 3; i++) restarted.Train();
                restarted.Restore(checkpoint);
                var actual = new[] { Values(restarted.Train()), Values(restarted.Train()) };
                checkpoint.Delete();
                return (expected, actual);
            });

            // Then its next 2 epochs are the original's, bit for bit (the same batches, weights and dropout masks)
            Assert.Equal(expected, actual);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static PersistentCheckpoint WriteAndDispose(string dir, TrainableState state)
    {
        using (state) return PersistentCheckpoint.Write(dir, state, null);
    }
}
