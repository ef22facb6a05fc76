using System.Globalization;
using System.IO.Compression;

namespace TorchTrials.Trainables.Data;

/// <summary>
/// The scikit-learn digits set (1797 8x8 images, 10 classes; see DIGITS-ATTRIBUTION.md), embedded in this assembly.
/// Pixels are scaled to [0, 1]. The train/validation split is a seeded stratified shuffle (<see cref="StratifiedSplit"/>), so every trial of a sweep
/// sees the same split.
/// </summary>
public sealed class DigitsDataset
{
    public const int Features = 64;
    public const int Classes = 10;

    private static readonly Lazy<(float[] X, long[] Y)> All = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private DigitsDataset(float[] trainX, long[] trainY, float[] validX, long[] validY)
    {
        TrainX = trainX;
        TrainY = trainY;
        ValidX = validX;
        ValidY = validY;
    }

    public float[] TrainX { get; }
    public long[] TrainY { get; }
    public float[] ValidX { get; }
    public long[] ValidY { get; }
    public int TrainCount => TrainY.Length;
    public int ValidCount => ValidY.Length;

    /// <summary>All 1797 samples: row-major features and labels.</summary>
    public static (float[] X, long[] Y) Samples => All.Value;

    /// <summary>Splits off <paramref name="validationFraction"/> of each class for validation, shuffled with <paramref name="seed"/>.</summary>
    public static DigitsDataset Split(double validationFraction = 0.2, int seed = 0)
    {
        var (x, y) = All.Value;
        var (trainIdx, validIdx) = StratifiedSplit.Indices(y, validationFraction, seed);
        return new DigitsDataset(Gather(x, trainIdx), trainIdx.Select(i => y[i]).ToArray(), Gather(x, validIdx), validIdx.Select(i => y[i]).ToArray());
    }

    private static float[] Gather(float[] x, int[] rows)
    {
        var result = new float[rows.Length * Features];
        for (int r = 0; r < rows.Length; r++) Array.Copy(x, rows[r] * Features, result, r * Features, Features);
        return result;
    }

    private static (float[] X, long[] Y) Load()
    {
        using var stream = typeof(DigitsDataset).Assembly.GetManifestResourceStream("TorchTrials.Trainables.Data.digits.csv.gz")
            ?? throw new InvalidOperationException("the embedded digits data set is missing from TorchTrials.Trainables");
        using var gzip = new GZipStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        var x = new List<float>(1797 * Features);
        var y = new List<long>(1797);
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.Length == 0) continue;
            var cells = line.Split(',');
            if (cells.Length != Features + 1) throw new InvalidDataException($"digits row has {cells.Length} columns, expected {Features + 1}");
            for (int i = 0; i < Features; i++) x.Add(float.Parse(cells[i], CultureInfo.InvariantCulture) / 16f);
            y.Add((long)double.Parse(cells[Features], CultureInfo.InvariantCulture));
        }
        return (x.ToArray(), y.ToArray());
    }
}
