using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>
/// Ray's TrialPlateauStopper: stops a trial when the population standard deviation of its last <c>num_results</c>
/// values of <c>metric</c> is below <c>std</c>, once it has reported at least <c>grace_period</c> results and, when a
/// <c>metric_threshold</c> is set, its current value is at least as good as the threshold (at most it for min, at
/// least it for max). A result without the metric counts as NaN, which never plateaus (Ray's std fails and becomes inf).
/// </summary>
public sealed class TrialPlateauStopper : IStopper
{
    private readonly Dictionary<string, int> _iterations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Queue<double>> _windows = new(StringComparer.Ordinal);

    public TrialPlateauStopper(string metric, double std = 0.01, int numResults = 4, int gracePeriod = 4, double? metricThreshold = null, MetricMode? mode = null)
    {
        Metric = OptionChecks.NotEmpty(metric, nameof(TrialPlateauStopper), nameof(metric));
        Std = OptionChecks.NonNegative(std, nameof(TrialPlateauStopper), nameof(std));
        NumResults = OptionChecks.AtLeast(numResults, 1, nameof(TrialPlateauStopper), nameof(numResults));
        GracePeriod = OptionChecks.AtLeast(gracePeriod, 0, nameof(TrialPlateauStopper), nameof(gracePeriod));
        if (metricThreshold is { } threshold)
        {
            OptionChecks.Finite(threshold, nameof(TrialPlateauStopper), nameof(metricThreshold));
            if (mode is null) throw OptionChecks.Fail(nameof(TrialPlateauStopper), nameof(mode), n => $"{n(nameof(mode))} must be min or max when {n(nameof(metricThreshold))} is set");
        }
        MetricThreshold = metricThreshold;
        Mode = mode;
    }

    public string Metric { get; }

    public double Std { get; }

    public int NumResults { get; }

    public int GracePeriod { get; }

    public double? MetricThreshold { get; }

    public MetricMode? Mode { get; }

    public bool ShouldStopTrial(string trialId, TrialResult result)
    {
        double value = result.TryGetDouble(Metric, out var v) ? v : double.NaN;
        if (!_windows.TryGetValue(trialId, out var window)) _windows[trialId] = window = new Queue<double>(NumResults);
        if (window.Count == NumResults) window.Dequeue();
        window.Enqueue(value);
        int iteration = _iterations[trialId] = _iterations.GetValueOrDefault(trialId) + 1;

        if (iteration < GracePeriod) return false;
        if (window.Count < NumResults) return false;
        if (MetricThreshold is { } threshold)
        {
            if (Mode == MetricMode.Min && value > threshold) return false;
            if (Mode == MetricMode.Max && value < threshold) return false;
        }
        return PopulationStd(window) < Std;
    }

    public bool ShouldStopAll() => false;

    /// <summary>numpy's std (ddof 0); NaN when any value is NaN.</summary>
    internal static double PopulationStd(IReadOnlyCollection<double> values)
    {
        double mean = values.Average();
        double sum = 0;
        foreach (var x in values) sum += (x - mean) * (x - mean);
        return Math.Sqrt(sum / values.Count);
    }
}
