using System.Diagnostics;
using TorchSharp;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Data;
using static TorchSharp.torch;

namespace TorchTrials.Benchmarks;

/// <summary>The digits MLP trained by hand in TorchSharp, with no runner: the baseline of the step-overhead comparison.</summary>
internal static class HandLoop
{
    /// <summary>Trains for <paramref name="epochs"/> on a fresh thread; returns seconds from the end of epoch 1 to the end of the last.</summary>
    public static double Run(TrialConfig config, int epochs, int threads)
    {
        double seconds = 0;
        var thread = new Thread(() => seconds = Train(config, epochs, threads));
        thread.Start();
        thread.Join();
        return seconds;
    }

    private static double Train(TrialConfig config, int epochs, int threads)
    {
        torch.set_num_threads(threads);
        var data = DigitsDataset.Split();
        using var trainX = tensor(data.TrainX).reshape(data.TrainCount, DigitsDataset.Features);
        using var trainY = tensor(data.TrainY);
        using var validX = tensor(data.ValidX).reshape(data.ValidCount, DigitsDataset.Features);
        using var validY = tensor(data.ValidY);
        int width = config.GetInt("width"), depth = config.GetInt("depth"), batch = config.GetInt("batch_size");
        var layers = new List<nn.Module<Tensor, Tensor>>();
        long inputs = DigitsDataset.Features;
        for (int i = 0; i < depth; i++)
        {
            layers.Add(nn.Linear(inputs, width));
            layers.Add(nn.ReLU());
            inputs = width;
        }
        layers.Add(nn.Linear(inputs, DigitsDataset.Classes));
        using var model = nn.Sequential(layers);
        using var optimizer = optim.Adam(model.parameters(), config.GetDouble("lr"));
        long n = data.TrainCount;
        long start = 0;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var order = new long[n];
            for (long i = 0; i < n; i++) order[i] = i;
            new Random(epoch).Shuffle(order);
            using var perm = tensor(order);
            model.train();
            using var lossSum = zeros(1);
            for (long s = 0; s < n; s += batch)
            {
                using var scope = NewDisposeScope();
                var idx = perm.narrow(0, s, Math.Min(batch, n - s));
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(model.forward(trainX.index_select(0, idx)), trainY.index_select(0, idx));
                loss.backward();
                optimizer.step();
                lossSum.add_(loss.detach() * idx.shape[0]);
            }
            model.eval();
            using (no_grad())
            using (var scope = NewDisposeScope())
            {
                var output = model.forward(validX);
                var accuracy = output.argmax(1).eq(validY).to(ScalarType.Float32).mean();
                _ = (lossSum / n).item<float>() + accuracy.item<float>() + nn.functional.cross_entropy(output, validY).item<float>();
            }
            if (epoch == 0) start = Stopwatch.GetTimestamp();
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}
