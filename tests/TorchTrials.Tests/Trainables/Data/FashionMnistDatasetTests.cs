using TorchTrials.Trainables;
using TorchTrials.Trainables.Data;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Trainables.Data;

/// <summary>Tests that set <see cref="FashionMnistDataset.DirectoryVariable"/>, a process-wide setting: run alone.</summary>
[CollectionDefinition("fashion-mnist", DisableParallelization = true)]
public sealed class FashionMnistCollection;

/// <summary>
/// Issue 11, item 6: Fashion-MNIST read from a folder of gzipped IDX files (here a hand-made one of 40 + 10 images, so the
/// test needs no installed data), split per device once, and a one-line error naming how to install it when it is missing.
/// </summary>
[Collection("fashion-mnist")]
public class FashionMnistDatasetTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-fashion", Guid.NewGuid().ToString("N")[..12]);

    public FashionMnistDatasetTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>A Fashion-MNIST folder in miniature: image i has every pixel equal to i, its label is i mod 10.</summary>
    private string WriteTinyDataSet(int train = 40, int test = 10)
    {
        foreach (var (images, labels, n) in new[]
        {
            (FashionMnistDataset.TrainImagesFile, FashionMnistDataset.TrainLabelsFile, train),
            (FashionMnistDataset.TestImagesFile, FashionMnistDataset.TestLabelsFile, test),
        })
        {
            var pixels = Enumerable.Range(0, n).SelectMany(i => Enumerable.Repeat((byte)i, 28 * 28)).ToArray();
            IdxFileTests.WriteGzip(Path.Combine(_dir, images), IdxFileTests.Idx(new[] { n, 28, 28 }, pixels));
            IdxFileTests.WriteGzip(Path.Combine(_dir, labels), IdxFileTests.Idx(new[] { n }, Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray()));
        }
        return _dir;
    }

    [Fact]
    public void The_four_files_load_as_train_and_test_images_with_their_labels()
    {
        var parts = FashionMnistDataset.Load(WriteTinyDataSet());

        Assert.Equal(new[] { 40, 28, 28 }, parts.TrainImages.Dimensions);
        Assert.Equal(new[] { 10, 28, 28 }, parts.TestImages.Dimensions);
        Assert.Equal(7, parts.TrainImages.Values[7 * 784 + 300]);
        Assert.Equal(3, parts.TrainLabels.Values[13]);
        Assert.Same(parts, FashionMnistDataset.Load(_dir));
    }

    [Fact]
    public void A_split_is_stratified_scaled_to_0_1_built_once_per_device_and_follows_the_labels()
    {
        WriteTinyDataSet();

        // 4 images per class; a fraction of 1/4 puts round(4 x 0.25) = 1 of each class in validation: 10 + 30 rows.
        var split = FashionMnistDataset.DeviceSplit(CPU, 0.25, seed: 3, directory: _dir);

        Assert.Equal(new long[] { 30, 784 }, split.TrainX.shape);
        Assert.Equal(new long[] { 10, 784 }, split.ValidX.shape);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), split.ValidY.data<long>().ToArray().Order());
        Assert.All(split.TrainY.data<long>().ToArray().GroupBy(y => y), g => Assert.Equal(3, g.Count()));
        // Image i has pixels i/255 and label i mod 10, so each row's pixel gives back its label.
        var pixels = split.TrainX.select(1, 0).data<float>().ToArray();
        var labels = split.TrainY.data<long>().ToArray();
        for (int r = 0; r < labels.Length; r++) Assert.Equal((long)Math.Round(pixels[r] * 255) % 10, labels[r]);
        Assert.Same(split, FashionMnistDataset.DeviceSplit(CPU, 0.25, seed: 3, directory: _dir));
        Assert.NotSame(split, FashionMnistDataset.DeviceSplit(CPU, 0.25, seed: 4, directory: _dir));
    }

    [Fact]
    public void A_folder_without_the_files_gives_one_line_naming_the_package_and_the_variable()
    {
        Assert.Equal(
            $"fashion-mnist not found at {_dir}: install it with `apt-get install dataset-fashion-mnist` (or set TORCHTRIALS_FASHION_MNIST=<dir>)",
            FashionMnistDataset.MissingMessage(_dir));
        var error = Assert.Throws<FileNotFoundException>(() => FashionMnistDataset.Load(_dir));
        Assert.Equal(FashionMnistDataset.MissingMessage(_dir), error.Message);
    }

    [Fact]
    public void The_variable_names_the_folder_and_the_registry_reports_it_missing()
    {
        var before = Environment.GetEnvironmentVariable(FashionMnistDataset.DirectoryVariable);
        try
        {
            Environment.SetEnvironmentVariable(FashionMnistDataset.DirectoryVariable, _dir);
            var registry = TrainableRegistry.CreateDefault();
            Assert.Equal(_dir, FashionMnistDataset.Directory);
            Assert.StartsWith($"fashion-mnist not found at {_dir}:", registry.Get("mlp_fashion").MissingPrerequisite!());
            Assert.StartsWith($"fashion-mnist not found at {_dir}:", registry.Get("convnet_fashion").MissingPrerequisite!());
            Assert.Null(registry.Get("mlp_digits").MissingPrerequisite);

            WriteTinyDataSet();
            Assert.Null(registry.Get("mlp_fashion").MissingPrerequisite!());
        }
        finally
        {
            Environment.SetEnvironmentVariable(FashionMnistDataset.DirectoryVariable, before);
        }
    }
}
