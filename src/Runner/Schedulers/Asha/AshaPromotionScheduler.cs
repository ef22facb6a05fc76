using System.Text;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Asynchronous successive halving as the paper defines it, with promotions (Li et al., "A System for Massively
/// Parallel Hyperparameter Tuning", MLSys 2020, Algorithm 2). Rung k (k = 0 .. K, K = floor(log_eta(R / r)) - s) sits
/// at <c>r * eta^(s + k)</c> of <c>time_attr</c>. Whenever a worker is free, get_job looks at the rungs from K - 1 down
/// to 0 and promotes the best configuration of rung k that is among the top floor(|rung k| / eta) and was not yet
/// promoted; only when no rung has one does a new configuration start at the bottom rung.
/// <para>
/// How this maps onto <see cref="ITrialControl"/>: a trial whose <c>time_attr</c> reaches its next rung's milestone
/// below the top rung has its signed metric recorded there and is PAUSED (the controller keeps its state in a memory
/// checkpoint and frees its slot). <see cref="ChooseTrialToRun"/> is get_job: it returns the promotable paused trial
/// (the controller resumes it from its checkpoint, so it trains on to the next rung), or else the first pending trial,
/// which is a new configuration for rung 0 (or a trial being recovered after a failure). Trials promoted into the top
/// rung train until <c>max_t</c> and are stopped there. A result that overshoots several milestones records the trial
/// at the lowest rung it had not reached yet, so nobody skips a promotion decision.
/// </para>
/// <para>
/// A sweep has finitely many configurations: once no trial runs or waits to start and none is promotable, nothing can
/// change any rung again, so the trials still paused were not good enough and are stopped (the paper's loop would keep
/// drawing new configurations instead). Errored or finished trials keep their recorded values, so they still count in
/// |rung k| and can occupy a top spot, but they are never promoted.
/// </para>
/// </summary>
public sealed class AshaPromotionScheduler : TrialSchedulerBase
{
    private readonly AshaPromotionOptions _options;
    private readonly double[] _milestones;
    private readonly List<(Trial Trial, double Score)>[] _rungs;
    private readonly HashSet<Trial>[] _promoted;
    private readonly Dictionary<Trial, int> _nextRung = new();

    public AshaPromotionScheduler(AshaPromotionOptions? options = null)
    {
        _options = (options ?? new AshaPromotionOptions()).Validate();
        Metric = _options.Metric;
        Mode = _options.Mode;
        int top = TopRung(_options);
        _milestones = Enumerable.Range(0, top + 1)
            .Select(k => _options.GracePeriod * Math.Pow(_options.ReductionFactor, _options.MinEarlyStoppingRate + k))
            .ToArray();
        _rungs = _milestones.Select(_ => new List<(Trial, double)>()).ToArray();
        _promoted = _milestones.Select(_ => new HashSet<Trial>()).ToArray();
    }

    public AshaPromotionOptions Options => _options;

    /// <summary>The rung milestones, bottom first.</summary>
    public IReadOnlyList<double> Milestones => _milestones;

    /// <summary>Trials promoted so far out of each rung.</summary>
    public int PromotionsFrom(int rung) => _promoted[rung].Count;

    /// <summary>Trials recorded at a rung with their signed metric, in recording order.</summary>
    public IReadOnlyList<(Trial Trial, double Score)> RecordedAt(int rung) => _rungs[rung];

    /// <summary>Trials stopped because they could never be promoted.</summary>
    public int NumStopped { get; private set; }

    /// <summary>K = floor(log_eta(R / r)) - s, the top rung (computed as Ray computes its rung count).</summary>
    internal static int TopRung(AshaPromotionOptions o) =>
        (int)Math.Floor(Math.Log(o.MaxT / o.GracePeriod) / Math.Log(o.ReductionFactor)) - o.MinEarlyStoppingRate;

    private int Top => _milestones.Length - 1;

    public override void Validate() => OptionChecks.MetricAndMode(this, Metric, Mode);

    public override void OnTrialAdd(ITrialControl control, Trial trial)
    {
        Validate();
        _nextRung.TryAdd(trial, 0);
    }

    public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
    {
        if (!result.TryGetDouble(_options.TimeAttr, out var time) || !result.TryGetDouble(Metric!, out _))
            return SchedulerDecision.Continue;
        double score = Score(result);
        int next = _nextRung.GetValueOrDefault(trial);
        if (time >= _options.MaxT)
        {
            Record(Top, trial, score);
            _nextRung[trial] = Top + 1;
            return SchedulerDecision.Stop;
        }
        if (next < Top && time >= _milestones[next])
        {
            Record(next, trial, score);
            _nextRung[trial] = next + 1;
            return SchedulerDecision.Pause;
        }
        return SchedulerDecision.Continue;
    }

    public override void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result)
    {
        if (result is null || !result.TryGetDouble(_options.TimeAttr, out var time) || !result.TryGetDouble(Metric!, out _)) return;
        int next = _nextRung.GetValueOrDefault(trial);
        if (next <= Top && time >= _milestones[next]) Record(next, trial, Score(result));
    }

    /// <summary>get_job: promote from the highest rung that has a promotable trial, else start a pending one.</summary>
    public override Trial? ChooseTrialToRun(ITrialControl control)
    {
        for (int k = Top - 1; k >= 0; k--)
        {
            foreach (var trial in TopOf(k))
            {
                if (_promoted[k].Contains(trial) || trial.Status != TrialStatus.Paused || !control.HasResourcesFor(trial)) continue;
                _promoted[k].Add(trial);
                return trial;
            }
        }
        foreach (var trial in control.PendingTrials)
            if (control.HasResourcesFor(trial)) return trial;

        if (!control.PendingTrials.Any() && control.Trials.All(t => t.Status != TrialStatus.Running) && !AnyPromotable())
        {
            foreach (var trial in control.PausedTrials.Where(_nextRung.ContainsKey).ToList())
            {
                control.StopTrial(trial);
                NumStopped++;
            }
        }
        return null;
    }

    public override string DebugString()
    {
        var text = new StringBuilder("Using ASHA (promotions):");
        for (int k = 0; k <= Top; k++)
            text.Append($" rung {k} @{_milestones[k]:G6}: {_rungs[k].Count} recorded, {_promoted[k].Count} promoted;");
        return text.ToString();
    }

    private bool AnyPromotable()
    {
        for (int k = Top - 1; k >= 0; k--)
            if (TopOf(k).Any(t => !_promoted[k].Contains(t) && t.Status == TrialStatus.Paused))
                return true;
        return false;
    }

    /// <summary>top_k(rung k, |rung k| / eta): best first, ties in recording order (OrderByDescending is stable).</summary>
    private IEnumerable<Trial> TopOf(int k) =>
        _rungs[k].OrderByDescending(e => e.Score).Take((int)Math.Floor(_rungs[k].Count / _options.ReductionFactor)).Select(e => e.Trial);

    private void Record(int rung, Trial trial, double score)
    {
        var entries = _rungs[rung];
        int existing = entries.FindIndex(e => e.Trial == trial);
        if (existing >= 0) entries[existing] = (trial, score);
        else entries.Add((trial, score));
    }
}
