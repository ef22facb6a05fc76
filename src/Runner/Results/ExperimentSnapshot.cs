using TorchTrials.Gpu;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Results;

/// <summary>A trial as a progress table shows it.</summary>
/// <param name="Metric">The experiment's metric in the trial's last result.</param>
/// <param name="BestMetric">The best value of the metric over all the trial's results (by the experiment's mode).</param>
/// <param name="StoppedBy">Who stopped a terminated trial before its own criteria (see <see cref="Trial.StoppedBy"/>).</param>
/// <param name="Lane">The fused array and lane the trial trains (or last trained) in, as <c>a3.5</c>; null alone.</param>
public sealed record TrialRow(
    string TrialId,
    TrialStatus Status,
    IReadOnlyList<KeyValuePair<string, string>> Params,
    long Iteration,
    double? Metric,
    string Resources,
    double TimeTotalS,
    string? Error,
    double? BestMetric = null,
    string? StoppedBy = null,
    string? Lane = null);

/// <summary>An immutable picture of the experiment, pushed to renderers; they never touch the controller's objects.</summary>
/// <param name="Best">The trial with the best <see cref="TrialRow.BestMetric"/>: the best result so far, which never goes down.</param>
public sealed record ExperimentSnapshot(
    string Name,
    TimeSpan Elapsed,
    IReadOnlyList<TrialRow> Trials,
    IReadOnlyDictionary<TrialStatus, int> Counts,
    string ResourceUsage,
    string? Metric,
    MetricMode? Mode,
    TrialRow? Best,
    bool Finished)
{
    public int Total => Trials.Count;
}

/// <summary>
/// Builds an <see cref="ExperimentSnapshot"/> on the controller's thread at most every <c>interval</c> and hands it to
/// <c>publish</c> (a channel writer, a notebook display, a test), plus a final one when the experiment ends.
/// </summary>
public sealed class SnapshotPublisher(
    string name,
    Func<string> usage,
    string? metric,
    MetricMode? mode,
    TimeSpan interval,
    Action<ExperimentSnapshot> publish,
    TimeProvider? clock = null) : ITrialCallback
{
    /// <summary>A publisher whose resource line is <paramref name="allocator"/>'s usage.</summary>
    public SnapshotPublisher(string name, DeviceSlotAllocator allocator, string? metric, MetricMode? mode, TimeSpan interval,
        Action<ExperimentSnapshot> publish, TimeProvider? clock = null)
        : this(name, allocator.DescribeUsage, metric, mode, interval, publish, clock)
    {
    }

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly long _started = (clock ?? TimeProvider.System).GetTimestamp();
    private TimeSpan? _last;

    private TimeSpan Elapsed => _clock.GetElapsedTime(_started);

    public void OnStepEnd(int iteration, IReadOnlyList<Trial> trials)
    {
        if (_last is { } last && Elapsed - last < interval) return;
        _last = Elapsed;
        publish(Build(trials, finished: false));
    }

    public void OnExperimentEnd(IReadOnlyList<Trial> trials) => publish(Build(trials, finished: true));

    /// <summary>The snapshot of <paramref name="trials"/> now.</summary>
    public ExperimentSnapshot Build(IReadOnlyList<Trial> trials, bool finished)
    {
        var rows = new List<TrialRow>(trials.Count);
        foreach (var t in trials)
        {
            double? value = metric is not null && t.LastResult is { } r && r.TryGetDouble(metric, out var v) ? v : null;
            double? bestValue = metric is not null && t.MetricAnalysis.TryGetValue(metric, out var summary)
                ? (mode == MetricMode.Min ? summary.Min : summary.Max)
                : null;
            var shown = t.EvaluatedParams.Count > 0 ? InSpecOrder(t) : (IEnumerable<KeyValuePair<string, object?>>)t.Config;
            rows.Add(new TrialRow(
                t.Id, t.Status,
                shown.Select(kv => new KeyValuePair<string, string>(kv.Key, TrialConfig.Format(kv.Value))).ToList(),
                t.LastResult?.TrainingIteration ?? 0, value, t.Resources.ToString(), t.LastResult?.TimeTotalS ?? 0, t.ErrorMessage,
                bestValue, t.Status == TrialStatus.Terminated ? t.StoppedBy : null, t.Lane));
        }
        TrialRow? best = null;
        if (metric is not null)
        {
            var sign = mode == MetricMode.Min ? -1.0 : 1.0;
            best = rows.Where(r => r.BestMetric is not null).MaxBy(r => sign * r.BestMetric!.Value);
        }
        var counts = Enum.GetValues<TrialStatus>().ToDictionary(s => s, s => rows.Count(r => r.Status == s));
        return new ExperimentSnapshot(name, Elapsed, rows, counts, usage(), metric, mode, best, finished);
    }

    /// <summary>The searched hyperparameters in the order of the config (the spec's order); evaluated params are a hash map.</summary>
    private static IEnumerable<KeyValuePair<string, object?>> InSpecOrder(Trial trial)
    {
        var position = trial.Config.Keys.Select((key, index) => (key, index)).ToDictionary(x => x.key, x => x.index, StringComparer.Ordinal);
        return trial.EvaluatedParams
            .OrderBy(kv => position.GetValueOrDefault(kv.Key, int.MaxValue))
            .ThenBy(kv => kv.Key, StringComparer.Ordinal);
    }
}
