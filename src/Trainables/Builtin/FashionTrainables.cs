using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Fusion;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Builtin;

/// <summary>
/// Classification on Fashion-MNIST (<see cref="FashionMnistDataset"/>; <see cref="ClassifierTrainable"/>). The 60,000 training
/// images are split by <c>validation_fraction</c> (1/6: 10,000 validation rows) and <c>data_seed</c> (0); <c>train_size</c>
/// (all 50,000 by default) trains on a seeded random subsample of the rest, so quick sweeps and tests stay quick. The split
/// lives once per process and device; a trial holds views of it. Missing data is reported at spec validation
/// (<see cref="IHasPrerequisites"/>) and, if it goes missing later, as the trial's error.
/// </summary>
public abstract class FashionClassifier : ClassifierTrainable, IHasPrerequisites
{
    public const double DefaultValidationFraction = 1.0 / 6;

    public static string? MissingPrerequisite() => FashionMnistDataset.MissingMessage();

    protected override (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY) LoadDeviceData(TrialConfig config, Device device)
    {
        double fraction = config.GetDouble("validation_fraction", DefaultValidationFraction, min: 1e-9, maxExclusive: 1);
        int seed = config.GetInt("data_seed", 0);
        var split = FashionMnistDataset.DeviceSplit(device, fraction, seed);
        long available = split.TrainCount;
        int trainSize = config.GetInt("train_size", (int)available, min: 1);
        if (trainSize > available)
            throw new ArgumentOutOfRangeException("train_size", $"config key 'train_size' must be at most {available} (the rows left after validation), got {trainSize}");
        // Views of the shared split: the trial's handles are its own, the pixels stay the process's.
        using var scope = NewDisposeScope();
        return (split.TrainX.narrow(0, 0, trainSize).view(InputShape(trainSize)).DetachFromDisposeScope(),
            split.TrainY.narrow(0, 0, trainSize).DetachFromDisposeScope(),
            split.ValidX.view(InputShape(split.ValidY.shape[0])).DetachFromDisposeScope(),
            split.ValidY.alias().DetachFromDisposeScope());
    }

    protected abstract long[] InputShape(long count);
}

/// <summary>
/// A multilayer perceptron on Fashion-MNIST (<see cref="ClassifierModels.Mlp"/> on the 784 pixels). Config: <c>width</c> (128),
/// <c>depth</c> (2), <c>dropout</c> (0), <c>train_size</c>, <c>validation_fraction</c>, <c>data_seed</c>, plus the shared
/// <c>lr</c>, <c>batch_size</c>, <c>optimizer</c>, <c>weight_decay</c>, <c>momentum</c>.
/// </summary>
[Trainable("mlp_fashion", Description = "MLP classifier on Fashion-MNIST (apt-get install dataset-fashion-mnist)")]
public sealed class MlpFashionTrainable : FashionClassifier, IFusableTrainable
{
    /// <inheritdoc cref="FusedMlpArray.Key"/>
    public static string? FusionKey(TrialConfig config) => FusedMlpArray.Key("mlp_fashion", config, DefaultValidationFraction, trainSize: true);

    /// <summary>A <see cref="FusedMlpArray"/> on Fashion-MNIST.</summary>
    public static FusedTrainable CreateArray(FusedArrayContext context) =>
        new FusedMlpArray(context, FashionMnistDataset.Features, FashionMnistDataset.Classes, nameof(MlpFashionTrainable), (config, device) =>
        {
            using var prototype = new MlpFashionTrainable();
            return prototype.DeviceDataFor(config, device);
        }, FusionKey);

    protected override long[] InputShape(long count) => new[] { count, FashionMnistDataset.Features };

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config) =>
        ClassifierModels.Mlp(config, FashionMnistDataset.Features, FashionMnistDataset.Classes, TrialGenerator);
}

/// <summary>
/// A small ConvNet on Fashion-MNIST (1x28x28; <see cref="ClassifierModels.ConvNet"/> pooling after each block): conv(3x3,
/// <c>channels</c>) - ReLU - max-pool(2) - conv(3x3, 2x<c>channels</c>) - ReLU - max-pool(2) - linear(<c>hidden</c>) - ReLU -
/// dropout - linear(10). Config: <c>channels</c> (16), <c>hidden</c> (64), <c>dropout</c> (0) and the data and optimizer keys of
/// <see cref="MlpFashionTrainable"/>. Fusable: trials of one key train as lanes of a <see cref="FusedConvNetArray"/>.
/// </summary>
[Trainable("convnet_fashion", Description = "small ConvNet classifier on Fashion-MNIST (apt-get install dataset-fashion-mnist)")]
public sealed class ConvNetFashionTrainable : FashionClassifier, IFusableTrainable
{
    /// <inheritdoc cref="FusedConvNetArray.Key"/>
    public static string? FusionKey(TrialConfig config) => FusedConvNetArray.Key("convnet_fashion", config, trainSize: true);

    /// <summary>A <see cref="FusedConvNetArray"/> on Fashion-MNIST (pooling after each block, as this class).</summary>
    public static FusedTrainable CreateArray(FusedArrayContext context) =>
        new FusedConvNetArray(context, FashionMnistDataset.Side, FashionMnistDataset.Classes, poolEachBlock: true, nameof(ConvNetFashionTrainable), (config, device) =>
        {
            using var prototype = new ConvNetFashionTrainable();
            return prototype.DeviceDataFor(config, device);
        });

    protected override long[] InputShape(long count) => new[] { count, 1, FashionMnistDataset.Side, FashionMnistDataset.Side };

    protected override nn.Module<Tensor, Tensor> BuildModel(TrialConfig config) =>
        ClassifierModels.ConvNet(config, FashionMnistDataset.Side, FashionMnistDataset.Classes, TrialGenerator, poolEachBlock: true);
}
