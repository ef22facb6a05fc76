using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Data;

/// <summary>
/// Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence): 60,000 training and 10,000 test images of 28x28 grey
/// pixels in 10 classes, read from the four gzipped IDX files that Debian's <c>dataset-fashion-mnist</c> installs in
/// <see cref="DefaultDirectory"/> (or the folder named by <see cref="DirectoryVariable"/>); nothing is downloaded.
/// The files are read once per process and folder; each training/validation split is built once per device
/// (<see cref="DeviceSplit"/>), so the trials of a sweep share one copy of the pixels on their device.
/// TorchVision 0.107's FashionMNIST reader does not fit: it reads decompressed files from <c>root/fashion-mnist/test_data</c>
/// (written there by its downloader) and builds one tensor per image.
/// </summary>
public static class FashionMnistDataset
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const string DirectoryVariable = "TORCHTRIALS_FASHION_MNIST";
    public const int Side = 28;
    public const int Features = Side * Side;
    public const int Classes = 10;

    public const string TrainImagesFile = "train-images-idx3-ubyte.gz";
    public const string TrainLabelsFile = "train-labels-idx1-ubyte.gz";
    public const string TestImagesFile = "t10k-images-idx3-ubyte.gz";
    public const string TestLabelsFile = "t10k-labels-idx1-ubyte.gz";

    private static readonly string[] Files = { TrainImagesFile, TrainLabelsFile, TestImagesFile, TestLabelsFile };

    private static readonly ConcurrentDictionary<string, Lazy<Parts>> HostCache = new(StringComparer.Ordinal);

    private static readonly ConcurrentDictionary<(string Directory, string Device, int Seed, double Fraction), Lazy<Split>> DeviceCache = new();

    /// <summary>The images as IDX arrays (pixels 0-255, row-major) and their labels (0-9).</summary>
    public sealed record Parts(IdxArray TrainImages, IdxArray TrainLabels, IdxArray TestImages, IdxArray TestLabels);

    /// <summary>
    /// One split on one device: the training rows (stratified, shuffled: any prefix is a random subsample) and the validation
    /// rows, pixels scaled to [0, 1] as [rows, 784] float32, labels int64. Shared by every trial: take views, never write.
    /// </summary>
    public sealed record Split(Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY)
    {
        public long TrainCount => TrainY.shape[0];
    }

    /// <summary>The folder the data is read from: <see cref="DirectoryVariable"/> when set, else <see cref="DefaultDirectory"/>.</summary>
    public static string Directory =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } dir ? dir : DefaultDirectory;

    /// <summary>One line saying how to install the data when a file is missing from <paramref name="directory"/>; null when all are there.</summary>
    public static string? MissingMessage(string? directory = null)
    {
        directory ??= Directory;
        if (Files.All(f => File.Exists(Path.Combine(directory, f)))) return null;
        return $"fashion-mnist not found at {directory}: install it with `apt-get install dataset-fashion-mnist` (or set {DirectoryVariable}=<dir>)";
    }

    /// <summary>The four files of <paramref name="directory"/> (default <see cref="Directory"/>), read once per process.</summary>
    public static Parts Load(string? directory = null)
    {
        directory = Path.GetFullPath(directory ?? Directory);
        if (MissingMessage(directory) is { } missing) throw new FileNotFoundException(missing);
        try
        {
            return HostCache.GetOrAdd(directory, d => new Lazy<Parts>(() => Read(d), LazyThreadSafetyMode.ExecutionAndPublication)).Value;
        }
        catch
        {
            HostCache.TryRemove(directory, out _);
            throw;
        }
    }

    /// <summary>
    /// The training set split into training and validation rows (<see cref="StratifiedSplit"/> with
    /// <paramref name="validationFraction"/> and <paramref name="seed"/>), on <paramref name="device"/>, built once per process.
    /// </summary>
    public static Split DeviceSplit(Device device, double validationFraction, int seed, string? directory = null)
    {
        var parts = Load(directory);
        var key = (Path.GetFullPath(directory ?? Directory), device.ToString(), seed, validationFraction);
        return DeviceCache.GetOrAdd(key, _ => new Lazy<Split>(() => Build(parts, device, validationFraction, seed), LazyThreadSafetyMode.ExecutionAndPublication)).Value;
    }

    private static Split Build(Parts parts, Device device, double validationFraction, int seed)
    {
        var labels = parts.TrainLabels.Values.Select(b => (long)b).ToArray();
        var (train, valid) = StratifiedSplit.Indices(labels, validationFraction, seed);
        // A scope of its own: the split outlives the trial whose Setup builds it, so no trial's scope may hold it.
        using var scope = NewDisposeScope();
        var pixels = from_array(parts.TrainImages.Values).reshape(parts.TrainImages.Count, Features).to(device);
        var targets = from_array(labels).to(device);
        using var scale = 255.0.ToScalar();
        Tensor Rows(Tensor source, int[] rows, bool image)
        {
            var index = tensor(rows.Select(r => (long)r).ToArray(), device: device);
            var picked = source.index_select(0, index);
            return (image ? picked.to(ScalarType.Float32).div_(scale) : picked).DetachFromDisposeScope();
        }
        return new Split(Rows(pixels, train, true), Rows(targets, train, false), Rows(pixels, valid, true), Rows(targets, valid, false));
    }

    private static Parts Read(string directory)
    {
        var parts = new Parts(
            IdxFile.Read(Path.Combine(directory, TrainImagesFile)),
            IdxFile.Read(Path.Combine(directory, TrainLabelsFile)),
            IdxFile.Read(Path.Combine(directory, TestImagesFile)),
            IdxFile.Read(Path.Combine(directory, TestLabelsFile)));
        Check(parts.TrainImages, parts.TrainLabels, TrainImagesFile, directory);
        Check(parts.TestImages, parts.TestLabels, TestImagesFile, directory);
        return parts;
    }

    private static void Check(IdxArray images, IdxArray labels, string file, string directory)
    {
        if (images.Dimensions is not [_, Side, Side])
            throw new InvalidDataException($"{Path.Combine(directory, file)}: expected Nx{Side}x{Side} images, got {string.Join("x", images.Dimensions)}");
        if (labels.Dimensions.Length != 1 || labels.Count != images.Count)
            throw new InvalidDataException($"{Path.Combine(directory, file)}: {images.Count} images but {labels.Count} labels");
        if (labels.Values.Any(v => v >= Classes))
            throw new InvalidDataException($"{Path.Combine(directory, file)}: a label is outside 0-{Classes - 1}");
    }
}
