namespace TorchTrials.Runner.Schedulers;

/// <summary>numpy's <c>nanpercentile</c> with its default linear method: NaNs are ignored; null when nothing is left.</summary>
internal static class NanPercentile
{
    public static double? Of(IEnumerable<double> values, double percent)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0) return null;
        double index = percent / 100 * (sorted.Length - 1);
        int below = (int)Math.Floor(index);
        int above = Math.Min(below + 1, sorted.Length - 1);
        double t = index - below;
        double a = sorted[below], b = sorted[above];
        // numpy's _lerp, including its switch to the upper end for t >= 0.5.
        return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
    }
}
