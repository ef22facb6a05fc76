using System.Globalization;
using System.Text;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Synchronous HyperBand with pausing brackets (Li et al., "Hyperband: A Novel Bandit-Based Approach to
/// Hyperparameter Optimization", JMLR 2018), as Ray Tune's HyperBandScheduler implements it
/// (python/ray/tune/schedulers/hyperband.py).
/// <para>
/// With <c>s_max + 1 = round(log(max_t) / log(eta)) + 1</c>, a band holds brackets s = 0 .. s_max, filled in that order
/// as trials arrive: bracket s admits <c>n0 = ceil((s_max + 1) / (s + 1) * eta^s)</c> trials and first runs them to
/// <c>r0 = int(max_t * eta^-s)</c> (a bracket with r0 = 0 is skipped). When a filled band is full a new band starts.
/// Inside a bracket, a trial that reaches the bracket's milestone is PAUSED until every live trial of the bracket has
/// reached it; then successive halving keeps the best <c>n = ceil(n / eta)</c> (of the n the bracket was sized for, as
/// Ray does, not of the trials actually there), stops the others, raises the milestone to <c>min(r * eta, max_t)</c> and
/// marks the kept paused trials to be resumed. After the last halving (s halvings in all) the bracket is finished and its
/// trials stop at the final milestone. <see cref="ChooseTrialToRun"/> serves brackets least complete first, band by band.
/// </para>
/// <para>
/// Trials that finish early, are stopped or error leave their bracket; if the rest of the bracket was waiting for them,
/// the bracket is processed at once (Ray's on_trial_remove). Deviations from Ray: Ray sets a bracket's
/// is_being_processed flag to stop that processing from re-entering itself through stop_trial but never clears it, so
/// after a bracket's first halving a trial leaving early no longer triggers the halving its paused peers wait for; here
/// the flag is cleared when processing ends. Ray also skips processing when the departure leaves the bracket finished,
/// which strands the trials paused at the final milestone; here they are stopped, as a finished bracket's are. <see cref="ChooseTrialToRun"/> only offers trials that fit in the free
/// resources (the controller's loop needs that), and a kept trial that is still saving when its bracket is processed is
/// resumed once its pause completes (Ray's trials_to_unpause).
/// </para>
/// </summary>
public sealed class HyperBandScheduler : TrialSchedulerBase
{
    private readonly HyperBandOptions _options;
    private readonly int _sMax1;
    private readonly List<List<Bracket?>> _hyperbands = new() { new List<Bracket?>() };
    private readonly Dictionary<Trial, (Bracket Bracket, int Band)> _trialInfo = new();
    private Bracket? _currentBracket;
    private int _bandIndex;

    public HyperBandScheduler(HyperBandOptions? options = null)
    {
        _options = (options ?? new HyperBandOptions()).Validate();
        Metric = _options.Metric;
        Mode = _options.Mode;
        _sMax1 = (int)Math.Round(Math.Log(_options.MaxT) / Math.Log(_options.ReductionFactor), MidpointRounding.ToEven) + 1;
    }

    public HyperBandOptions Options => _options;

    public int NumStopped { get; private set; }

    /// <summary>s_max + 1: brackets per band.</summary>
    public int BracketsPerBand => _sMax1;

    /// <summary>Bracket sizes and first milestones for s = 0 .. s_max (n0, r0).</summary>
    public IReadOnlyList<(int MaxTrials, int InitialMilestone)> BracketShapes =>
        Enumerable.Range(0, _sMax1).Select(s => (MaxTrials(s), InitialMilestone(s))).ToList();

    /// <summary>Where a trial is: its band, the bracket's s, and the bracket's current milestone and size; null when unknown.</summary>
    public (int Band, int S, double Milestone, int Size)? Placement(Trial trial) =>
        _trialInfo.TryGetValue(trial, out var info) ? (info.Band, info.Bracket.S, info.Bracket.CumulativeR, info.Bracket.N) : null;

    private int MaxTrials(int s) => (int)Math.Ceiling(_sMax1 / (double)(s + 1) * Math.Pow(_options.ReductionFactor, s));

    private int InitialMilestone(int s) => (int)(_options.MaxT * Math.Pow(_options.ReductionFactor, -s));

    public override void Validate() => OptionChecks.MetricAndMode(this, Metric, Mode);

    public override void OnTrialAdd(ITrialControl control, Trial trial)
    {
        Validate();
        var bracket = _currentBracket;
        var band = _hyperbands[_bandIndex];
        if (bracket is null || bracket.Filled)
        {
            while (true)
            {
                if (band.Count == _sMax1)
                {
                    band = new List<Bracket?>();
                    _hyperbands.Add(band);
                    _bandIndex++;
                }
                int s = band.Count;
                if (InitialMilestone(s) == 0)
                {
                    band.Add(null);
                    continue;
                }
                bracket = new Bracket(_options, MaxTrials(s), InitialMilestone(s), s);
                band.Add(bracket);
                break;
            }
            _currentBracket = bracket;
        }
        bracket.AddTrial(trial);
        _trialInfo[trial] = (bracket, _bandIndex);
    }

    public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
    {
        if (!_trialInfo.TryGetValue(trial, out var info) || !info.Bracket.IsLive(trial)) return SchedulerDecision.Continue;
        var bracket = info.Bracket;
        bracket.UpdateTrialStats(trial, result);
        if (bracket.ContinueTrial(trial)) return SchedulerDecision.Continue;
        return ProcessBracket(control, bracket);
    }

    public override void OnTrialRemove(ITrialControl control, Trial trial)
    {
        if (!_trialInfo.TryGetValue(trial, out var info)) return;
        info.Bracket.CleanupTrial(trial);
        if (!info.Bracket.IsBeingProcessed) ProcessBracket(control, info.Bracket);
    }

    public override void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result) => OnTrialRemove(control, trial);

    public override void OnTrialError(ITrialControl control, Trial trial) => OnTrialRemove(control, trial);

    public override Trial? ChooseTrialToRun(ITrialControl control)
    {
        foreach (var band in _hyperbands)
        {
            foreach (var bracket in band.OfType<Bracket>().OrderBy(b => b.CompletionPercentage))
            {
                foreach (var trial in bracket.CurrentTrials)
                {
                    bool waiting = trial.Status == TrialStatus.Pending || (trial.Status == TrialStatus.Paused && bracket.TrialsToUnpause.Contains(trial));
                    if (waiting && control.HasResourcesFor(trial)) return trial;
                }
            }
        }
        return null;
    }

    public override string DebugString()
    {
        var text = new StringBuilder($"Using HyperBand: num_stopped={NumStopped} total_brackets={_hyperbands.Sum(b => b.Count)}");
        for (int i = 0; i < _hyperbands.Count; i++)
        {
            text.Append($"\nRound #{i}:");
            foreach (var bracket in _hyperbands[i].OfType<Bracket>()) text.Append("\n  ").Append(bracket);
        }
        return text.ToString();
    }

    /// <summary>
    /// Ray's _process_bracket. When every live trial reached the milestone: stop the bracket if it is finished, else halve
    /// it (stop the bad trials, mark the good paused ones to resume). Returns the decision for the reporting trial: PAUSE
    /// to wait for the others, STOP when it is among the bad ones, CONTINUE when it is kept and must go on.
    /// </summary>
    private SchedulerDecision ProcessBracket(ITrialControl control, Bracket bracket)
    {
        var action = SchedulerDecision.Pause;
        if (!bracket.CurIterDone) return action;
        bracket.IsBeingProcessed = true;
        try
        {
            if (bracket.Finished)
            {
                foreach (var trial in bracket.CurrentTrials.Where(t => t.Status == TrialStatus.Paused).ToList())
                    control.StopTrial(trial);
                return SchedulerDecision.Stop;
            }

            var (good, bad) = bracket.SuccessiveHalving(this);
            NumStopped += bad.Count;
            foreach (var trial in bad)
            {
                if (trial.Status == TrialStatus.Running && !trial.IsSaving)
                {
                    // The reporting trial: the controller stops it on our decision.
                    bracket.CleanupTrial(trial);
                    action = SchedulerDecision.Stop;
                }
                else
                {
                    control.StopTrial(trial);
                }
            }

            foreach (var trial in good)
            {
                if (bracket.ContinueTrial(trial))
                {
                    if (trial.Status == TrialStatus.Paused || trial.IsSaving) bracket.TrialsToUnpause.Add(trial);
                    else if (trial.Status == TrialStatus.Running) action = SchedulerDecision.Continue;
                }
                else if (bracket.Finished && bracket.StopLastTrials)
                {
                    if (trial.Status == TrialStatus.Paused || trial.IsSaving)
                    {
                        control.StopTrial(trial);
                    }
                    else if (trial.Status == TrialStatus.Running)
                    {
                        bracket.CleanupTrial(trial);
                        action = SchedulerDecision.Stop;
                    }
                }
            }
        }
        finally
        {
            bracket.IsBeingProcessed = false;
        }
        return action;
    }

    private sealed class Bracket
    {
        private readonly HyperBandOptions _options;
        private readonly List<Trial> _order = new();
        private readonly Dictionary<Trial, TrialResult?> _live = new();
        private readonly List<Trial> _all = new();
        private readonly double _totalWork;
        private double _completedProgress;
        private double _r;
        private int _halves;

        public Bracket(HyperBandOptions options, int maxTrials, int initialMilestone, int s)
        {
            _options = options;
            S = s;
            N = maxTrials;
            _r = initialMilestone;
            CumulativeR = initialMilestone;
            _halves = s;
            _totalWork = TotalWork(maxTrials, initialMilestone, s);
        }

        public int S { get; }

        /// <summary>How many trials the bracket keeps at its current level.</summary>
        public int N { get; private set; }

        /// <summary>The milestone trials run to before the next halving.</summary>
        public double CumulativeR { get; private set; }

        public bool StopLastTrials => _options.StopLastTrials;

        public bool IsBeingProcessed { get; set; }

        public HashSet<Trial> TrialsToUnpause { get; } = new();

        public IReadOnlyList<Trial> CurrentTrials => _order.ToList();

        public bool Filled => _live.Count == N;

        public bool IsLive(Trial trial) => _live.ContainsKey(trial);

        public void AddTrial(Trial trial)
        {
            if (Filled) throw new InvalidOperationException("Cannot add trial to filled bracket!");
            _live[trial] = null;
            _order.Add(trial);
            _all.Add(trial);
        }

        public bool CurIterDone => _live.Values.All(r => Time(r) >= CumulativeR);

        public bool Finished => StopLastTrials && _halves == 0 && CurIterDone;

        public bool ContinueTrial(Trial trial)
        {
            if (!StopLastTrials && _halves == 0) return true;
            return Time(_live[trial]) < CumulativeR;
        }

        public (List<Trial> Good, List<Trial> Bad) SuccessiveHalving(HyperBandScheduler scheduler)
        {
            if (_halves == 0 && !StopLastTrials) return (_order.ToList(), new List<Trial>());
            if (_halves <= 0) throw new InvalidOperationException("successive halving was asked of a bracket with no halvings left");
            _halves--;
            N = (int)Math.Ceiling(N / _options.ReductionFactor);
            _r = (int)Math.Min(_r * _options.ReductionFactor, _options.MaxT);
            CumulativeR = _r;
            // Ascending by signed metric; OrderBy is stable, so ties keep the order trials joined the bracket.
            var sorted = _order.OrderBy(t => scheduler.Score(_live[t] ?? throw new InvalidOperationException($"trial {t.Id} reached a milestone without a result"))).ToList();
            int keep = Math.Min(N, sorted.Count);
            return (sorted.Skip(sorted.Count - keep).ToList(), sorted.Take(sorted.Count - keep).ToList());
        }

        public void UpdateTrialStats(Trial trial, TrialResult result)
        {
            double observed = Time(result);
            if (observed < 0) throw new InvalidOperationException($"{_options.TimeAttr} must not be negative, trial {trial.Id} reported {observed}");
            _completedProgress += observed - Time(_live[trial]);
            _live[trial] = result;
            TrialsToUnpause.Remove(trial);
        }

        public void CleanupTrial(Trial trial)
        {
            if (_live.Remove(trial)) _order.Remove(trial);
            TrialsToUnpause.Remove(trial);
        }

        public double CompletionPercentage => Finished ? 1.0 : Math.Min(_completedProgress / _totalWork, 1.0);

        public override string ToString()
        {
            var counts = _all.GroupBy(t => t.Status).Select(g => $"{g.Key.ToString().ToUpperInvariant()}: {g.Count()}").Order(StringComparer.Ordinal);
            return string.Create(CultureInfo.InvariantCulture,
                $"Bracket(Max Size (n)={N}, Milestone (r)={CumulativeR}, completed={CompletionPercentage:P1}): {{{string.Join(", ", counts)}}}");
        }

        private double Time(TrialResult? result) => result is null ? 0 : result.GetDouble(_options.TimeAttr);

        /// <summary>Ray's _calculate_total_work, including its use of the first milestone as the cumulative budget.</summary>
        private double TotalWork(int n, double r, int s)
        {
            double work = 0, cumulative = r, count = n;
            for (int i = 0; i <= s; i++)
            {
                work += (int)count * (int)r;
                count = Math.Ceiling(count / _options.ReductionFactor);
                r = (int)Math.Min(r * _options.ReductionFactor, _options.MaxT - cumulative);
            }
            return work;
        }
    }
}
