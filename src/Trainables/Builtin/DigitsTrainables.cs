using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Fusion;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Builtin;

/// <summary>Classification on the digits set (<see cref="ClassifierTrainable"/>), split by <c>validation_fraction</c> (0.2) and <c>data_seed</c> (0).</summary>
public abstract class DigitsClassifier : ClassifierTrainable
{
    protected override (Array TrainX, long[] TrainShape, Array TrainY, Array ValidX, long[] ValidShape, Array ValidY) LoadData(TrialConfig config)
    {
        var data = DigitsDataset.Split(config.GetDouble("validation_fraction", 0.2), config.GetInt("data_seed", 0));
        return (data.TrainX, InputShape(data.TrainCount), data.TrainY, data.ValidX, InputShape(data.ValidCount), data.ValidY);
    }

    protected abstract long[] InputShape(int count);
}

/// <summary>
/// A multilayer perceptron on the digits set (<see cref="ClassifierModels.Mlp"/>). Config: <c>width</c> (128), <c>depth</c> hidden layers (2),
/// <c>dropout</c> (0), plus the shared <c>lr</c>, <c>batch_size</c>, <c>optimizer</c>, <c>weight_decay</c>, <c>momentum</c>.
/// </summary>
[Trainable("mlp_digits", Description = "MLP classifier on the scikit-learn digits set")]
public sealed class MlpDigitsTrainable : DigitsClassifier, IFusableTrainable
{
    /// <inheritdoc cref="FusedMlpArray.Key"/>
    public static string? FusionKey(TrialConfig config) => FusedMlpArray.Key("mlp_digits", config);

    /// <summary>A <see cref="FusedMlpArray"/> on the digits set.</summary>
    public static FusedTrainable CreateArray(FusedArrayContext context) =>
        new FusedMlpArray(context, DigitsDataset.Features, DigitsDataset.Classes, nameof(MlpDigitsTrainable), (config, device) =>
        {
            using var prototype = new MlpDigitsTrainable();
            return prototype.DeviceDataFor(config, device);
        }, FusionKey);

    protected override long[] InputShape(int count) => new long[] { count, DigitsDataset.Features };

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config) =>
        ClassifierModels.Mlp(config, DigitsDataset.Features, DigitsDataset.Classes, TrialGenerator);
}

/// <summary>
/// A small ConvNet on the digits images (1x8x8; <see cref="ClassifierModels.ConvNet"/> with one pooling): conv(3x3, <c>channels</c>) - ReLU -
/// conv(3x3, 2x<c>channels</c>) - ReLU - max-pool(2) - linear(<c>hidden</c>) - ReLU - dropout - linear(10).
/// Config: <c>channels</c> (16), <c>hidden</c> (64), <c>dropout</c> (0). Fusable: trials of one key train as lanes of a <see cref="FusedConvNetArray"/>.
/// </summary>
[Trainable("convnet_digits", Description = "small ConvNet classifier on the digits images")]
public sealed class ConvNetDigitsTrainable : DigitsClassifier, IFusableTrainable
{
    /// <inheritdoc cref="FusedConvNetArray.Key"/>
    public static string? FusionKey(TrialConfig config) => FusedConvNetArray.Key("convnet_digits", config);

    /// <summary>A <see cref="FusedConvNetArray"/> on the digits images (one pooling, as this class).</summary>
    public static FusedTrainable CreateArray(FusedArrayContext context) =>
        new FusedConvNetArray(context, 8, DigitsDataset.Classes, poolEachBlock: false, nameof(ConvNetDigitsTrainable), (config, device) =>
        {
            using var prototype = new ConvNetDigitsTrainable();
            return prototype.DeviceDataFor(config, device);
        });

    protected override long[] InputShape(int count) => new long[] { count, 1, 8, 8 };

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config) =>
        ClassifierModels.ConvNet(config, 8, DigitsDataset.Classes, TrialGenerator, poolEachBlock: false);
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
        int features = config.GetInt("features", 8, min: 1);
        int samples = config.GetInt("samples", 512, min: 4);
        double noise = config.GetDouble("noise", 0.1);
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
