using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// The median stopping rule of Google Vizier (Golovin et al., "Google Vizier: A Service for Black-Box Optimization",
/// KDD 2017), as Ray Tune's MedianStoppingRule implements it (python/ray/tune/schedulers/median_stopping_rule.py).
/// <para>
/// At a result at time t (<c>time_attr</c>) at or past <c>grace_period</c>, the other trials whose latest recorded
/// result is at or past t are the samples (as in Ray: running and stopped trials count, not only completed ones). With
/// fewer than <c>min_samples_required</c>, the trial yields (PAUSE) when some trial is pending or paused and at least
/// <c>min_time_slice</c> has passed since it last yielded, else it continues. Otherwise it is stopped (or paused once,
/// when <c>hard_stop</c> is false) if its best value so far is strictly worse than the median, over the samples, of each
/// sample's running average of the values it reported between <c>grace_period</c> and t. A trial paused this way
/// continues FIFO afterwards without further checks. Results missing <c>time_attr</c> or the metric are ignored. A
/// trial's final result is recorded again on completion, as Ray's on_trial_complete does. One deviation: when a
/// sample has no result between the grace period and t (its results jumped over that window) its running average is
/// NaN, numpy's median becomes NaN and Ray's <c>max(median, best) != best</c> stops the trial; here a NaN median
/// stops nobody.
/// </para>
/// </summary>
public sealed class MedianStoppingRule : TrialSchedulerBase
{
    private readonly MedianStoppingOptions _options;
    private readonly Dictionary<Trial, List<(double Time, double Score)>> _results = new();
    private readonly Dictionary<Trial, double> _lastPause = new();
    private readonly HashSet<Trial> _stopped = new();

    public MedianStoppingRule(MedianStoppingOptions? options = null)
    {
        _options = (options ?? new MedianStoppingOptions()).Validate();
        Metric = _options.Metric;
        Mode = _options.Mode;
    }

    public MedianStoppingOptions Options => _options;

    /// <summary>Trials stopped (or paused, without hard_stop) by the rule.</summary>
    public int NumStopped => _stopped.Count;

    public override void Validate() => OptionChecks.MetricAndMode(this, Metric, Mode);

    public override void OnTrialAdd(ITrialControl control, Trial trial) => Validate();

    public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
    {
        if (!result.TryGetDouble(_options.TimeAttr, out var time) || !result.TryGetDouble(Metric!, out _))
            return SchedulerDecision.Continue;
        if (_stopped.Contains(trial)) return SchedulerDecision.Continue;

        Record(trial, time, Score(result));
        if (time < _options.GracePeriod) return SchedulerDecision.Continue;

        var samples = _results.Where(kv => kv.Key != trial && kv.Value[^1].Time >= time).Select(kv => kv.Value).ToList();
        if (samples.Count < _options.MinSamplesRequired)
        {
            bool othersWaiting = control.Trials.Any(t => t.Status is TrialStatus.Pending or TrialStatus.Paused);
            if (time - _lastPause.GetValueOrDefault(trial, double.NegativeInfinity) > _options.MinTimeSlice && othersWaiting)
            {
                _lastPause[trial] = time;
                return SchedulerDecision.Pause;
            }
            return SchedulerDecision.Continue;
        }

        double median = Median(samples.Select(s => RunningMean(s, time)).ToList());
        double best = _results[trial].Max(r => r.Score);
        if (median > best)
        {
            _stopped.Add(trial);
            return _options.HardStop ? SchedulerDecision.Stop : SchedulerDecision.Pause;
        }
        return SchedulerDecision.Continue;
    }

    public override void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result)
    {
        if (result is null || !result.TryGetDouble(_options.TimeAttr, out var time) || !result.TryGetDouble(Metric!, out _)) return;
        Record(trial, time, Score(result));
    }

    public override string DebugString() => $"Using MedianStoppingRule: num_stopped={NumStopped}.";

    private void Record(Trial trial, double time, double score)
    {
        if (!_results.TryGetValue(trial, out var list)) _results[trial] = list = new List<(double, double)>();
        list.Add((time, score));
    }

    /// <summary>Mean of the values reported between the grace period and <paramref name="time"/> (NaN when there are none, as numpy's mean of nothing).</summary>
    private double RunningMean(List<(double Time, double Score)> results, double time)
    {
        var scoped = results.Where(r => _options.GracePeriod <= r.Time && r.Time <= time).Select(r => r.Score).ToList();
        return scoped.Count == 0 ? double.NaN : scoped.Average();
    }

    /// <summary>numpy's median: the mean of the two middle values for an even count; NaN when any value is NaN.</summary>
    internal static double Median(List<double> values)
    {
        if (values.Count == 0 || values.Any(double.IsNaN)) return double.NaN;
        values.Sort();
        int mid = values.Count / 2;
        return values.Count % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }
}
