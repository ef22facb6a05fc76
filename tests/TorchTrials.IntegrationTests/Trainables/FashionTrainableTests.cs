using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Data;
using Xunit.Abstractions;

namespace TorchTrials.IntegrationTests.Trainables;

/// <summary>A test that needs the installed Fashion-MNIST files; skipped, saying how to install them, where they are missing.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public FashionMnistFactAttribute()
    {
        if (FashionMnistDataset.MissingMessage(FashionMnistDataset.DefaultDirectory) is { } missing) Skip = missing;
    }
}

/// <summary>The same for a theory.</summary>
public sealed class FashionMnistTheoryAttribute : TheoryAttribute
{
    public FashionMnistTheoryAttribute()
    {
        if (FashionMnistDataset.MissingMessage(FashionMnistDataset.DefaultDirectory) is { } missing) Skip = missing;
    }
}

/// <summary>Tests that set <see cref="FashionMnistDataset.DirectoryVariable"/>, a process-wide setting, or rely on it being unset: run alone.</summary>
[CollectionDefinition("fashion-mnist", DisableParallelization = true)]
public sealed class FashionMnistCollection;

/// <summary>Issue 11, item 6: the Fashion-MNIST trainables on the real data, and the error when the data is missing.</summary>
[Collection("fashion-mnist")]
public class FashionTrainableTests(ITestOutputHelper output)
{
    private static TrainableHost Host(string name, TrialConfig config) => BuiltinTrainableTests.Host(name, config);

    private static string EmptyDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-fashion-missing", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static T WithDataDirectory<T>(string dir, Func<T> action)
    {
        var before = Environment.GetEnvironmentVariable(FashionMnistDataset.DirectoryVariable);
        Environment.SetEnvironmentVariable(FashionMnistDataset.DirectoryVariable, dir);
        try
        {
            return action();
        }
        finally
        {
            Environment.SetEnvironmentVariable(FashionMnistDataset.DirectoryVariable, before);
        }
    }

    private static string Missing(string dir) =>
        $"fashion-mnist not found at {dir}: install it with `apt-get install dataset-fashion-mnist` (or set TORCHTRIALS_FASHION_MNIST=<dir>)";

    [FashionMnistFact]
    public void The_installed_files_hold_60000_training_and_10000_test_images_of_28x28_in_10_balanced_classes()
    {
        var parts = FashionMnistDataset.Load(FashionMnistDataset.DefaultDirectory);

        Assert.Equal(new[] { 60_000, 28, 28 }, parts.TrainImages.Dimensions);
        Assert.Equal(new[] { 10_000, 28, 28 }, parts.TestImages.Dimensions);
        Assert.All(parts.TrainLabels.Values.GroupBy(v => v), g => Assert.Equal(6_000, g.Count()));
        Assert.All(parts.TestLabels.Values.GroupBy(v => v), g => Assert.Equal(1_000, g.Count()));
    }

    [FashionMnistFact]
    public void The_trainables_share_one_split_of_the_training_set_10000_images_held_out_for_validation()
    {
        var split = FashionMnistDataset.DeviceSplit(TorchSharp.torch.CPU, 1.0 / 6, 0);
        Assert.Equal(50_000, split.TrainCount);
        Assert.Equal(10_000, split.ValidY.shape[0]);
        Assert.Same(split, FashionMnistDataset.DeviceSplit(TorchSharp.torch.CPU, 1.0 / 6, 0));
    }

    // Chance is 0.10; a linear model reaches about 0.8 on this data set with all the images.
    [FashionMnistTheory]
    [InlineData("mlp_fashion", 2e-3, "width", 128, 5_000, 3, 0.75)]
    [InlineData("convnet_fashion", 3e-3, "channels", 8, 2_000, 2, 0.6)]
    public void A_trainable_learns_from_a_subsample(string name, double lr, string sizeKey, int size, int trainSize, int epochs, double expected)
    {
        using var host = Host(name, TrialConfig.From(("lr", lr), (sizeKey, size), ("train_size", trainSize), ("batch_size", 64)));
        double best = 0;
        for (int i = 0; i < epochs; i++) best = Math.Max(best, host.Train().GetDouble("val_accuracy"));
        output.WriteLine($"{name}, {trainSize} images, {epochs} epochs: best val_accuracy {best:0.000}");
        Assert.True(best >= expected, $"best validation accuracy {best}");
    }

    [FashionMnistFact]
    public void A_train_size_beyond_the_rows_left_after_validation_is_an_error_naming_the_key()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Host("mlp_fashion", TrialConfig.From(("train_size", 50_001))));
        Assert.StartsWith("config key 'train_size' must be at most 50000 (the rows left after validation), got 50001", error.Message);
    }

    [Fact]
    public void Without_the_data_a_trial_fails_in_setup_with_the_line_saying_how_to_install_it()
    {
        var dir = EmptyDirectory();
        var error = WithDataDirectory(dir, () => Assert.Throws<FileNotFoundException>(() => Host("mlp_fashion", TrialConfig.Empty)));
        Assert.Equal(Missing(dir), error.Message);
    }

    [Fact]
    public void Without_the_data_torchtrials_run_exits_2_with_the_line_saying_how_to_install_it()
    {
        var dir = EmptyDirectory();
        var spec = Path.Combine(dir, "fashion.yaml");
        File.WriteAllText(spec, """
            name: fashion
            trainable: convnet_fashion
            search_space:
              lr: {loguniform: [0.0001, 0.01]}
            metric: val_accuracy
            mode: max
            stop: {training_iteration: 1}
            """);
        var console = new TestConsole();
        console.Profile.Width = 400;
        var results = Path.Combine(dir, "results");

        int code = WithDataDirectory(dir, () => CliApp.Run(new[] { "run", spec, "--results-dir", results }, console, plain: true));

        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(Missing(dir), console.Output);
        Assert.False(Directory.Exists(Path.Combine(results, "fashion")));
    }
}
