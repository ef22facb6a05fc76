namespace TorchTrials.Trainables.Data;

/// <summary>
/// A seeded stratified train/validation split (scikit-learn's <c>train_test_split(..., stratify=y)</c> in spirit): each
/// class, in label order, is shuffled and gives <c>round(count x fraction)</c> rows to validation; the training rows are
/// then shuffled once more, so any prefix of them is a random subsample.
/// </summary>
public static class StratifiedSplit
{
    /// <summary>Row indices of the training and validation parts of <paramref name="labels"/>.</summary>
    public static (int[] Train, int[] Valid) Indices(IReadOnlyList<long> labels, double validationFraction, int seed)
    {
        if (validationFraction is <= 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(validationFraction), $"validation_fraction must be between 0 and 1, got {validationFraction}");
        var rng = new Random(seed);
        var train = new List<int>();
        var valid = new List<int>();
        foreach (var group in Enumerable.Range(0, labels.Count).GroupBy(i => labels[i]).OrderBy(g => g.Key))
        {
            var idx = group.ToArray();
            rng.Shuffle(idx);
            int nValid = (int)Math.Round(idx.Length * validationFraction);
            valid.AddRange(idx.Take(nValid));
            train.AddRange(idx.Skip(nValid));
        }
        var trainIdx = train.ToArray();
        rng.Shuffle(trainIdx);
        return (trainIdx, valid.ToArray());
    }
}
