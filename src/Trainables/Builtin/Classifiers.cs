using TorchTrials.Trainables.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Builtin;

/// <summary>Classification: cross-entropy loss, validation accuracy as <c>val_accuracy</c> (alias <c>mean_accuracy</c>).</summary>
public abstract class ClassifierTrainable : SupervisedTrainable
{
    protected override Tensor Loss(Tensor output, Tensor target) => nn.functional.cross_entropy(output, target);

    protected override void AddValidationMetrics(Metrics metrics, Tensor output, Tensor target)
    {
        var accuracy = output.argmax(1).eq(target).to(ScalarType.Float32).mean();
        metrics.Add("val_accuracy", accuracy);
        metrics.Add("mean_accuracy", accuracy.clone());
    }
}

/// <summary>The networks the built-in classifiers share, built from their config keys.</summary>
public static class ClassifierModels
{
    /// <summary>
    /// <c>depth</c> (2) hidden layers of <c>width</c> (128) units, each linear - ReLU - dropout (<c>dropout</c>, 0: none),
    /// then a linear layer to <paramref name="classes"/> outputs.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Mlp(TrialConfig config, long inputs, long classes, Generator generator)
    {
        int width = config.GetInt("width", 128, min: 1);
        int depth = config.GetInt("depth", 2, min: 0);
        double dropout = Dropout(config);
        var layers = new List<nn.Module<Tensor, Tensor>>();
        for (int i = 0; i < depth; i++)
        {
            layers.Add(nn.Linear(inputs, width));
            layers.Add(nn.ReLU());
            if (dropout > 0) layers.Add(new SeededDropout(dropout, generator));
            inputs = width;
        }
        layers.Add(nn.Linear(inputs, classes));
        return nn.Sequential(layers);
    }

    /// <summary>
    /// On 1x<paramref name="side"/>x<paramref name="side"/> images: conv(3x3, <c>channels</c> (16)) - ReLU - [max-pool(2) when
    /// <paramref name="poolEachBlock"/>] - conv(3x3, 2x<c>channels</c>) - ReLU - max-pool(2) - linear(<c>hidden</c> (64)) - ReLU -
    /// dropout (<c>dropout</c>, 0) - linear(<paramref name="classes"/>).
    /// </summary>
    public static nn.Module<Tensor, Tensor> ConvNet(TrialConfig config, int side, long classes, Generator generator, bool poolEachBlock)
    {
        int channels = config.GetInt("channels", 16, min: 1);
        int hidden = config.GetInt("hidden", 64, min: 1);
        double dropout = Dropout(config);
        var layers = new List<nn.Module<Tensor, Tensor>> { nn.Conv2d(1, channels, 3, padding: 1), nn.ReLU() };
        if (poolEachBlock) layers.Add(nn.MaxPool2d(2));
        int outSide = poolEachBlock ? side / 4 : side / 2;
        layers.AddRange(new nn.Module<Tensor, Tensor>[]
        {
            nn.Conv2d(channels, 2 * channels, 3, padding: 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2L * channels * outSide * outSide, hidden),
            nn.ReLU(),
            new SeededDropout(dropout, generator),
            nn.Linear(hidden, classes),
        });
        return nn.Sequential(layers);
    }

    private static double Dropout(TrialConfig config) => config.GetDouble("dropout", 0, min: 0, maxExclusive: 1);
}
