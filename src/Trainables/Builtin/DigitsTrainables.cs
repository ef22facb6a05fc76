using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Builtin;

/// <summary>Classification on the digits set: cross-entropy loss, validation accuracy as <c>val_accuracy</c> (alias <c>mean_accuracy</c>).</summary>
public abstract class DigitsClassifier : SupervisedTrainable
{
    protected override (Array TrainX, long[] TrainShape, Array TrainY, Array ValidX, long[] ValidShape, Array ValidY) LoadData(TrialConfig config)
    {
        var data = DigitsDataset.Split(config.GetDouble("validation_fraction", 0.2), config.GetInt("data_seed", 0));
        return (data.TrainX, InputShape(data.TrainCount), data.TrainY, data.ValidX, InputShape(data.ValidCount), data.ValidY);
    }

    protected abstract long[] InputShape(int count);

    protected override Tensor Loss(Tensor output, Tensor target) => nn.functional.cross_entropy(output, target);

    protected override void AddValidationMetrics(Metrics metrics, Tensor output, Tensor target)
    {
        var accuracy = output.argmax(1).eq(target).to(ScalarType.Float32).mean();
        metrics.Add("val_accuracy", accuracy);
        metrics.Add("mean_accuracy", accuracy.clone());
    }
}

/// <summary>
/// A multilayer perceptron on the digits set. Config: <c>width</c> (128), <c>depth</c> hidden layers (2), <c>dropout</c> (0),
/// plus the shared <c>lr</c>, <c>batch_size</c>, <c>optimizer</c>, <c>weight_decay</c>, <c>momentum</c>.
/// </summary>
[Trainable("mlp_digits", Description = "MLP classifier on the scikit-learn digits set")]
public sealed class MlpDigitsTrainable : DigitsClassifier
{
    protected override long[] InputShape(int count) => new long[] { count, DigitsDataset.Features };

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config)
    {
        int width = config.GetInt("width", 128);
        int depth = config.GetInt("depth", 2);
        double dropout = config.GetDouble("dropout", 0);
        if (width < 1) throw new ArgumentOutOfRangeException("width", $"config key 'width' must be at least 1, got {width}");
        if (depth < 0) throw new ArgumentOutOfRangeException("depth", $"config key 'depth' must not be negative, got {depth}");
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException("dropout", $"config key 'dropout' must be in [0, 1), got {dropout}");
        var layers = new List<nn.Module<Tensor, Tensor>>();
        long inputs = DigitsDataset.Features;
        for (int i = 0; i < depth; i++)
        {
            layers.Add(nn.Linear(inputs, width));
            layers.Add(nn.ReLU());
            if (dropout > 0) layers.Add(new SeededDropout(dropout, TrialGenerator));
            inputs = width;
        }
        layers.Add(nn.Linear(inputs, DigitsDataset.Classes));
        return nn.Sequential(layers);
    }
}

/// <summary>
/// A small ConvNet on the digits images (1x8x8): conv(3x3, <c>channels</c>) - ReLU - conv(3x3, 2x<c>channels</c>) - ReLU -
/// max-pool(2) - linear(<c>hidden</c>) - ReLU - dropout - linear(10). Config: <c>channels</c> (16), <c>hidden</c> (64), <c>dropout</c> (0).
/// </summary>
[Trainable("convnet_digits", Description = "small ConvNet classifier on the digits images")]
public sealed class ConvNetDigitsTrainable : DigitsClassifier
{
    protected override long[] InputShape(int count) => new long[] { count, 1, 8, 8 };

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config)
    {
        int channels = config.GetInt("channels", 16);
        int hidden = config.GetInt("hidden", 64);
        double dropout = config.GetDouble("dropout", 0);
        if (channels < 1) throw new ArgumentOutOfRangeException("channels", $"config key 'channels' must be at least 1, got {channels}");
        if (hidden < 1) throw new ArgumentOutOfRangeException("hidden", $"config key 'hidden' must be at least 1, got {hidden}");
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException("dropout", $"config key 'dropout' must be in [0, 1), got {dropout}");
        return nn.Sequential(
            nn.Conv2d(1, channels, 3, padding: 1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding: 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, hidden),
            nn.ReLU(),
            new SeededDropout(dropout, TrialGenerator),
            nn.Linear(hidden, 10));
    }
}

/// <summary>
/// Regression on generated data for fast tests: y = x·w + 0.5·sin(x₀) + noise with <c>features</c> (8) inputs,
/// <c>samples</c> (512) rows and <c>noise</c> (0.1), generated from <c>data_seed</c>; a linear model or an MLP of <c>width</c>
/// (0 = linear). Reports <c>loss</c>, <c>val_loss</c> and <c>neg_val_loss</c>.
/// </summary>
[Trainable("synthetic_regression", Description = "fast regression on generated data")]
public sealed class SyntheticRegressionTrainable : SupervisedTrainable
{
    protected override (Array TrainX, long[] TrainShape, Array TrainY, Array ValidX, long[] ValidShape, Array ValidY) LoadData(TrialConfig config)
    {
        int features = config.GetInt("features", 8);
        int samples = config.GetInt("samples", 512);
        double noise = config.GetDouble("noise", 0.1);
        if (features < 1) throw new ArgumentOutOfRangeException("features", $"config key 'features' must be at least 1, got {features}");
        if (samples < 4) throw new ArgumentOutOfRangeException("samples", $"config key 'samples' must be at least 4, got {samples}");
        var rng = new Random(config.GetInt("data_seed", 0));
        var w = Enumerable.Range(0, features).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var x = new float[samples * features];
        var y = new float[samples];
        for (int i = 0; i < samples; i++)
        {
            double target = 0;
            for (int j = 0; j < features; j++)
            {
                double v = rng.NextDouble() * 2 - 1;
                x[i * features + j] = (float)v;
                target += v * w[j];
            }
            target += 0.5 * Math.Sin(3 * x[i * features]) + noise * Gaussian(rng);
            y[i] = (float)target;
        }
        int train = samples * 4 / 5;
        return (x[..(train * features)], new long[] { train, features }, y[..train],
            x[(train * features)..], new long[] { samples - train, features }, y[train..]);
    }

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config)
    {
        int features = config.GetInt("features", 8);
        int width = config.GetInt("width", 0);
        return width <= 0
            ? nn.Sequential(nn.Linear(features, 1), nn.Flatten(0))
            : nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, 1), nn.Flatten(0));
    }

    protected override Tensor Loss(Tensor output, Tensor target) => nn.functional.mse_loss(output, target);

    protected override void AddValidationMetrics(Metrics metrics, Tensor output, Tensor target) =>
        metrics.Add("neg_val_loss", -nn.functional.mse_loss(output, target));

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
