using System.Globalization;
using System.Text;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Asynchronous successive halving, Ray's stopping variant (Ray Tune's AsyncHyperBandScheduler, file
/// python/ray/tune/schedulers/async_hyperband.py; Li et al., "A System for Massively Parallel Hyperparameter
/// Tuning", MLSys 2020, with early stopping instead of the paper's promotions; see <see cref="AshaPromotionScheduler"/>
/// for those).
/// <para>
/// Each bracket s has rungs at <c>grace_period * reduction_factor^(k + s)</c> for
/// <c>k = 0 .. int(log(max_t / grace_period) / log(reduction_factor) - s)</c>. When a trial's <c>time_attr</c> first
/// reaches a rung (the highest rung reached that has no value of it yet), its signed metric is compared with the
/// cutoff of that rung, the <c>(1 - 1/reduction_factor)</c> percentile (numpy's nanpercentile, linear) of the values
/// recorded there before; it is stopped when strictly below, and its value is recorded either way. The first trial at a
/// rung always continues. A trial reaching <c>max_t</c> is stopped (with <c>stop_last_trials</c>); without it, a trial
/// already recorded at the rung it reached continues without a new comparison. Trials are placed in brackets at random,
/// with probability softmax(number of rungs of each bracket), from the seeded generator. Completed trials record their
/// final result too (Ray's on_trial_complete). Results missing <c>time_attr</c> or the metric are ignored.
/// </para>
/// </summary>
public sealed class AshaScheduler : TrialSchedulerBase
{
    private readonly AshaOptions _options;
    private readonly List<Bracket> _brackets;
    private readonly Dictionary<string, Bracket> _trialInfo = new(StringComparer.Ordinal);
    private readonly Random _random;

    public AshaScheduler(AshaOptions? options = null)
    {
        _options = (options ?? new AshaOptions()).Validate();
        Metric = _options.Metric;
        Mode = _options.Mode;
        _random = _options.Seed is { } seed ? new Random(seed) : new Random();
        _brackets = Enumerable.Range(0, _options.Brackets)
            .Select(s => new Bracket(_options.GracePeriod, _options.MaxT, _options.ReductionFactor, s, _options.StopLastTrials))
            .ToList();
    }

    public AshaOptions Options => _options;

    /// <summary>Trials this scheduler decided to stop.</summary>
    public int NumStopped { get; private set; }

    /// <summary>The rung milestones of each bracket, highest first.</summary>
    public IReadOnlyList<IReadOnlyList<double>> RungMilestones => _brackets.Select(b => (IReadOnlyList<double>)b.Rungs.Select(r => r.Milestone).ToList()).ToList();

    /// <summary>The signed values recorded at a rung (bracket <paramref name="bracket"/>, rungs highest first), by trial id.</summary>
    public IReadOnlyDictionary<string, double> RecordedAt(int bracket, int rung) => _brackets[bracket].Rungs[rung].Recorded;

    /// <summary>The index of the bracket a trial was placed in, or null.</summary>
    public int? BracketOf(Trial trial) => _trialInfo.TryGetValue(trial.Id, out var b) ? _brackets.IndexOf(b) : null;

    public override void Validate() => OptionChecks.MetricAndMode(this, Metric, Mode);

    public override void OnTrialAdd(ITrialControl control, Trial trial)
    {
        Validate();
        int max = _brackets.Max(b => b.Rungs.Count);
        var weights = _brackets.Select(b => Math.Exp(b.Rungs.Count - max)).ToArray();
        double u = _random.NextDouble() * weights.Sum();
        int index = 0;
        for (double cumulative = weights[0]; index < weights.Length - 1 && u >= cumulative; cumulative += weights[++index]) { }
        _trialInfo[trial.Id] = _brackets[index];
    }

    public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
    {
        if (!result.TryGetDouble(_options.TimeAttr, out var time) || !result.TryGetDouble(Metric!, out _))
            return SchedulerDecision.Continue;
        SchedulerDecision action;
        if (time >= _options.MaxT && _options.StopLastTrials)
            action = SchedulerDecision.Stop;
        else if (_trialInfo.TryGetValue(trial.Id, out var bracket))
            action = bracket.OnResult(trial.Id, time, Score(result));
        else
            action = SchedulerDecision.Continue;
        if (action == SchedulerDecision.Stop) NumStopped++;
        return action;
    }

    public override void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result)
    {
        if (result is null || !result.TryGetDouble(_options.TimeAttr, out var time) || !result.TryGetDouble(Metric!, out _)) return;
        if (!_trialInfo.Remove(trial.Id, out var bracket)) return;
        bracket.OnResult(trial.Id, time, Score(result));
    }

    public override void OnTrialRemove(ITrialControl control, Trial trial) => _trialInfo.Remove(trial.Id);

    public override bool SupportsResultBuffering => true;

    public override string DebugString()
    {
        var text = new StringBuilder($"Using AsyncHyperBand: num_stopped={NumStopped}");
        foreach (var bracket in _brackets)
            text.Append('\n').Append("Bracket: ").AppendJoin(" | ", bracket.Rungs.Select(r =>
                $"Iter {r.Milestone.ToString("F3", CultureInfo.InvariantCulture)}: {bracket.Cutoff(r.Recorded)?.ToString("G6", CultureInfo.InvariantCulture) ?? "None"}"));
        return text.ToString();
    }

    private sealed record Rung(double Milestone, Dictionary<string, double> Recorded);

    /// <summary>Ray's _Bracket: rungs highest first, so the first rung at or below the trial's time is found first.</summary>
    private sealed class Bracket
    {
        private readonly double _rf;
        private readonly bool _stopLastTrials;

        public Bracket(double minT, double maxT, double reductionFactor, int s, bool stopLastTrials)
        {
            _rf = reductionFactor;
            _stopLastTrials = stopLastTrials;
            int maxRungs = (int)(Math.Log(maxT / minT) / Math.Log(reductionFactor) - s + 1);
            Rungs = new List<Rung>();
            for (int k = maxRungs - 1; k >= 0; k--)
                Rungs.Add(new Rung(minT * Math.Pow(reductionFactor, k + s), new Dictionary<string, double>(StringComparer.Ordinal)));
        }

        public List<Rung> Rungs { get; }

        public double? Cutoff(Dictionary<string, double> recorded) =>
            recorded.Count == 0 ? null : NanPercentile.Of(recorded.Values, (1 - 1 / _rf) * 100);

        public SchedulerDecision OnResult(string trialId, double time, double score)
        {
            var action = SchedulerDecision.Continue;
            foreach (var (milestone, recorded) in Rungs)
            {
                if (time >= milestone && recorded.ContainsKey(trialId) && !_stopLastTrials) break;
                if (time < milestone || recorded.ContainsKey(trialId)) continue;
                if (Cutoff(recorded) is { } cutoff && score < cutoff) action = SchedulerDecision.Stop;
                recorded[trialId] = score;
                break;
            }
            return action;
        }
    }
}
