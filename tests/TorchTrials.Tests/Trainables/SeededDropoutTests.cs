using TorchTrials.Tests.Support;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables;

public class SeededDropoutTests
{
    private const double P = 0.3;

    /// <summary>The outputs of <paramref name="count"/> training-mode passes of a ones tensor [8, 64], flattened.</summary>
    private static float[][] Draw(SeededDropout dropout, int count)
    {
        dropout.train();
        var draws = new float[count][];
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            draws[i] = dropout.forward(ones(8, 64)).data<float>().ToArray();
        }
        return draws;
    }

    private static float[][] DrawFromSeed(ulong seed, int count)
    {
        using var generator = new Generator(seed);
        using var dropout = new SeededDropout(P, generator);
        return Draw(dropout, count);
    }

    [Fact]
    public void Its_masks_depend_only_on_the_seed_while_other_threads_draw_from_the_global_generator_and_collect_garbage()
    {
        // Given the masks of seed 5 drawn with nothing else running
        var quiet = DrawFromSeed(5, 40);

        // When the same seed draws again on two threads at once, while a third draws from LibTorch's global generator
        // (what TorchSharp's nn.Dropout uses) and a fourth forces collections
        using var stop = new CancellationTokenSource();
        var globalDraws = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var scope = NewDisposeScope();
                rand(8, 64);
            }
        });
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) GC.Collect(0);
        });
        globalDraws.Start();
        collector.Start();
        float[][]? first = null, second = null;
        try
        {
            var a = new Thread(() => first = DrawFromSeed(5, 40));
            var b = new Thread(() => second = DrawFromSeed(5, 40));
            a.Start();
            b.Start();
            a.Join();
            b.Join();
        }
        finally
        {
            stop.Cancel();
            globalDraws.Join();
            collector.Join();
        }

        // Then both threads drew exactly the quiet masks, and another seed draws others
        Assert.Equal(quiet, first);
        Assert.Equal(quiet, second);
        Assert.NotEqual(quiet, DrawFromSeed(6, 40));
    }

    [Fact]
    public void In_training_it_zeroes_about_p_of_the_elements_and_scales_the_rest_and_in_eval_it_passes_the_input_through()
    {
        using var generator = new Generator(1);
        using var dropout = new SeededDropout(P, generator);
        var values = Draw(dropout, 20).SelectMany(v => v).ToArray();

        float kept = (float)(1 / (1 - P));
        Assert.All(values, v => Assert.True(v == 0 || Math.Abs(v - kept) < 1e-6, $"value {v} is neither 0 nor {kept}"));
        // 10,240 draws: the zeroed share is within 0.02 of 0.3 (about 4.4 standard deviations).
        double zeroed = values.Count(v => v == 0) / (double)values.Length;
        Assert.InRange(zeroed, P - 0.02, P + 0.02);

        dropout.eval();
        using var input = tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 });
        using var output = dropout.forward(input);
        Assert.Equal(input.data<float>().ToArray(), output.data<float>().ToArray());
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void A_probability_outside_0_to_1_is_refused_by_name(double p)
    {
        using var generator = new Generator(1);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new SeededDropout(p, generator));
        Assert.Contains("dropout probability must be in [0, 1)", error.Message);
    }

    public enum Storage { Snapshot, MemoryCheckpoint, SafetensorsFiles }

    [Theory]
    [InlineData(Storage.Snapshot)]
    [InlineData(Storage.MemoryCheckpoint)]
    [InlineData(Storage.SafetensorsFiles)]
    public void A_saved_generator_state_replays_the_masks_drawn_after_the_save(Storage storage)
    {
        using var dir = new TempDir();
        using var generator = new Generator(11);
        using var dropout = new SeededDropout(P, generator);

        // Given a generator that drew 3 masks and was saved (in a snapshot, a memory checkpoint, or safetensors files)
        Draw(dropout, 3);
        var saved = new TrainableState();
        saved.AddGeneratorState("dropout", generator);
        Checkpoint? checkpoint = storage switch
        {
            Storage.MemoryCheckpoint => MemoryCheckpoint.FromState(saved, null),
            Storage.SafetensorsFiles => PersistentCheckpoint.Write(Path.Combine(dir.Path, "ck"), saved, null),
            _ => null,
        };

        // When it draws 5 more, then 4 unrelated ones, and is restored
        var afterSave = Draw(dropout, 5);
        Draw(dropout, 4);
        using (var loaded = checkpoint?.LoadState(CPU) ?? saved.Clone())
            Assert.True(loaded.RestoreGeneratorState("dropout", generator));

        // Then it draws the 5 masks that followed the save again
        Assert.Equal(afterSave, Draw(dropout, 5));
        checkpoint?.Delete();
        if (storage != Storage.MemoryCheckpoint) saved.Dispose();
    }

    [Fact]
    public void A_snapshot_without_a_generator_state_leaves_the_generator_as_it_is()
    {
        using var generator = new Generator(3);
        using var dropout = new SeededDropout(P, generator);
        var expected = DrawFromSeed(3, 2);
        using var state = new TrainableState();

        Assert.False(state.RestoreGeneratorState("dropout", generator));
        Assert.Equal(expected, Draw(dropout, 2));
    }
}
