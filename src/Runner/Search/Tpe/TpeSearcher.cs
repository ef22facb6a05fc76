using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Tree-structured Parzen Estimator, following Optuna 3.1.0's <c>TPESampler</c> (<c>optuna/samplers/_tpe/sampler.py</c>,
/// <c>parzen_estimator.py</c>, <c>_truncnorm.py</c>) with its defaults: random suggestions until
/// <see cref="TpeOptions.StartupTrials"/> (10) trials completed or were pruned; then the observations are ranked
/// as <c>_get_observation_pairs</c>/<c>_split_observation_pairs</c> do: completed trials first by loss (the metric,
/// negated when maximising), then pruned trials by their last reported step, larger first, then by the loss at that step
/// (NaN counts as +∞; a pruned trial that reported nothing ranks as step -1, loss 0), ties by trial order; errored
/// trials are left out and running ones too (unless constant_liar, where they rank last). The best gamma(n) =
/// min(ceil(0.1 n), 25) form l(x), the rest g(x), each a <see cref="ParzenEstimator"/> with default_weights by trial
/// order (oldest ramped, newest 25 at 1) and a prior of weight 1; 24 candidates are drawn from l(x), snapped to the
/// domains' values, and the one with the largest log l(x) - log g(x) wins. Univariate by default (one estimator per
/// dimension, each sampled independently); <see cref="TpeOptions.Multivariate"/> follows multivariate=True.
/// It works in the unit cube: every dimension's unit mapping is affine in the scale Optuna models (log for log domains,
/// cells widened by half a step for integers and quantized floats), so the estimators are Optuna's; grid dimensions are
/// categories. Like Optuna 3.1.0 its kernel log density leaves out log σ (<see cref="TpeOptions.ScaleKernelDensity"/> adds it,
/// as later Optuna versions do). Deviations: its own random stream (not numpy's MT19937); ties among equal kernel
/// centres broken by trial order (numpy's argsort is not stable); the truncated-normal quantile inverts Φ directly
/// instead of bisecting (same root to about 1e-15); log-sum-exp leaves out terms more than 60 below the largest (each
/// under 1e-26 of the sum); qloguniform and qlograndint, which Optuna 3.1.0 cannot express, are modelled like its log
/// integers (continuous density, sample rounded); normal domains (which Optuna lacks) are modelled on the CDF scale.
/// Cost per suggestion is linear in the number of observations: they are kept sorted incrementally (by rank, by trial
/// order, and per numeric dimension by value in contiguous arrays that also remember each kernel's mass), and the
/// likelihoods are evaluated in vectorised loops.
/// </summary>
public sealed class TpeSearcher : UnitCubeSearcher
{
    private readonly TpeOptions _options;
    private readonly Dictionary<string, LiveTrial> _live = new(StringComparer.Ordinal);
    private readonly List<Observation> _byLoss = new();
    private readonly List<Observation> _bySeq = new();
    private SortedColumn?[] _columns = Array.Empty<SortedColumn?>();
    private bool[] _isBelow = new bool[64];
    private int[] _rank = new int[64];
    private int _nextId;
    private KernelDimension[] _kinds = Array.Empty<KernelDimension>();
    private SearchRandom _tpeRandom;
    private int _nextSeq;
    private int _finishedCount;

    public TpeSearcher(string? metric = null, MetricMode? mode = null, TpeOptions? options = null)
        : base(metric, mode, (options ?? new TpeOptions()).Seed, (options ?? new TpeOptions()).PointsToEvaluate)
    {
        _options = options ?? new TpeOptions();
        _options.Validate();
        // Optuna keeps the random sampler's generator apart from the TPE one; so do we.
        _tpeRandom = new SearchRandom(SearchRandom.Derive(Seed, 1));
    }

    public TpeOptions Options => _options;

    /// <summary>Completed and pruned trials the searcher learned from (Optuna's n).</summary>
    public int ObservationCount => _finishedCount;

    /// <summary>Trial order numbers (0 for the first suggestion) of the observations as ranked, best first: what gamma(n) cuts.</summary>
    internal IReadOnlyList<int> RankedObservations() => _byLoss.Where(o => !o.Running).Select(o => o.Seq).ToList();

    /// <summary>The trial order numbers that would form l(x) and g(x) now, each oldest first.</summary>
    internal (IReadOnlyList<int> Below, IReadOnlyList<int> Above) Split()
    {
        var below = SplitBelow(out _);
        var result = (below.Select(o => o.Seq).ToList(), _bySeq.Where(o => !_isBelow[o.Id]).Select(o => o.Seq).ToList());
        foreach (var o in below) _isBelow[o.Id] = false;
        return result;
    }

    protected override void OnSpaceSet()
    {
        _kinds = Dimensions.Select(d => d.Domain.IsCategorical
            ? new KernelDimension(KernelKind.Categorical, d.Domain.Cells)
            : d.Domain.Cells > 0 ? new KernelDimension(KernelKind.Discrete, d.Domain.Cells) : new KernelDimension(KernelKind.Continuous, 0)).ToArray();
        _columns = _kinds.Select(k => k.Kind == KernelKind.Categorical ? null : new SortedColumn()).ToArray();
    }

    protected override Suggestion? BeforeSuggest(string trialId)
    {
        if (Metric is null || Mode is null)
            throw new InvalidOperationException($"TpeSearcher needs a metric and a mode (got metric {Metric ?? "unset"}, mode {Mode?.ToString() ?? "unset"}): set them in the searcher or the experiment");
        if (_live.ContainsKey(trialId)) throw new ArgumentException($"trial id '{trialId}' was already suggested");
        return null;
    }

    protected override double[] Propose()
    {
        if (_finishedCount < _options.StartupTrials) return RandomPoint();
        var below = SplitBelow(out var aboveWeights);
        try
        {
            return _options.Multivariate ? ProposeMultivariate(below, aboveWeights) : ProposeUnivariate(below, aboveWeights);
        }
        finally
        {
            foreach (var o in below) _isBelow[o.Id] = false;
        }
    }

    protected override void OnSuggested(string trialId, double[] unit)
    {
        var live = new LiveTrial(_nextSeq++, unit);
        _live[trialId] = live;
        if (_options.ConstantLiar)
        {
            live.Liar = new Observation(live.Seq, double.PositiveInfinity, double.PositiveInfinity, unit, running: true);
            Insert(live.Liar);
        }
    }

    public override void OnTrialResult(string trialId, TrialResult result)
    {
        if (_live.TryGetValue(trialId, out var live)) live.Report(result, Metric, Mode);
    }

    public override void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome)
    {
        if (!_live.Remove(trialId, out var live)) return;
        if (live.Liar is not null) Remove(live.Liar);
        switch (outcome)
        {
            case TrialOutcome.Completed when TryGetLoss(result, out var loss):
                Add(new Observation(live.Seq, double.NegativeInfinity, loss, live.Unit, running: false));
                break;
            case TrialOutcome.Pruned:
                if (result is not null) live.Report(result, Metric, Mode);
                Add(live.HasIntermediate
                    ? new Observation(live.Seq, -live.Step, double.IsNaN(live.Loss) ? double.PositiveInfinity : live.Loss, live.Unit, running: false)
                    : new Observation(live.Seq, 1, 0.0, live.Unit, running: false));
                break;
        }
    }

    /// <summary>
    /// Teaches the searcher a trial that ran elsewhere (Ray's <c>add_evaluated_point</c>): its config (every searched key),
    /// its metric value, and for a pruned trial the step it was stopped at. Errored points are ignored, as Optuna ignores failed trials.
    /// </summary>
    public void AddEvaluatedPoint(TrialConfig config, double value, TrialOutcome outcome = TrialOutcome.Completed, long? step = null)
    {
        if (Space is null) throw new InvalidOperationException("TpeSearcher has no search space yet: call SetSearchProperties first");
        if (Mode is null) throw new InvalidOperationException("TpeSearcher needs a mode before it can take evaluated points");
        var unit = new double[Dimensions.Count];
        for (int i = 0; i < unit.Length; i++)
        {
            var key = Dimensions[i].Key;
            if (!config.TryGetValue(key, out var v)) throw new ArgumentException($"evaluated point has no value for '{key}'");
            try
            {
                unit[i] = Dimensions[i].Domain.ToUnit(v);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"evaluated point: key '{key}': {e.Message}");
            }
        }
        double loss = Mode == MetricMode.Max ? -value : value;
        if (outcome == TrialOutcome.Completed && !double.IsNaN(value))
            Add(new Observation(_nextSeq++, double.NegativeInfinity, loss, unit, running: false));
        else if (outcome == TrialOutcome.Pruned)
            Add(step is { } s
                ? new Observation(_nextSeq++, -s, double.IsNaN(loss) ? double.PositiveInfinity : loss, unit, running: false)
                : new Observation(_nextSeq++, 1, 0.0, unit, running: false));
    }

    /// <summary>Marks the gamma(n) best observations as below and returns them oldest first; ranks the others by trial order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private List<Observation> SplitBelow(out double[] aboveWeights)
    {
        int total = _byLoss.Count;
        int nBelow = Math.Clamp(_options.Gamma(_finishedCount), 0, total);
        for (int i = 0; i < nBelow; i++) _isBelow[_byLoss[i].Id] = true;
        var below = new List<Observation>(nBelow);
        int rank = 0;
        foreach (var o in _bySeq)
        {
            if (_isBelow[o.Id]) below.Add(o);
            else _rank[o.Id] = rank++;
        }
        aboveWeights = CheckedWeights(rank);
        return below;
    }

    private double[] CheckedWeights(int n)
    {
        var w = _options.Weights(n);
        if (w.Length < n) throw new InvalidOperationException($"the TPE weights function returned {w.Length} weights for {n} observations");
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            if (!double.IsFinite(w[i])) throw new InvalidOperationException($"the TPE weights function returned a value that is not finite for {n} observations");
            if (w[i] < 0) throw new InvalidOperationException($"the TPE weights function returned a negative weight for {n} observations");
            sum += w[i];
        }
        if (n > 0 && sum <= 0) throw new InvalidOperationException($"the TPE weights function returned all-zero weights for {n} observations");
        return w;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private double[] ProposeUnivariate(List<Observation> below, double[] aboveWeights)
    {
        int dims = Dimensions.Count;
        var belowWeights = CheckedWeights(below.Count).AsSpan(0, below.Count).ToArray();
        int aboveCount = _byLoss.Count - below.Count;
        var aboveLogWeights = new double[aboveCount];
        for (int r = 0; r < aboveCount; r++) aboveLogWeights[r] = Math.Log(aboveWeights[r]);
        var result = new double[dims];
        for (int d = 0; d < dims; d++)
        {
            var domain = Dimensions[d].Domain;
            if (domain.IsSingleValued)
            {
                result[d] = domain.Snap(0.5);
                continue;
            }
            var kind = new[] { _kinds[d] };
            var belowValues = new double[below.Count];
            for (int i = 0; i < below.Count; i++) belowValues[i] = Coordinate(below[i], d);
            var lower = ParzenEstimator.Build(kind, new[] { belowValues }, belowWeights, _options);

            var aboveValues = new double[aboveCount];
            var aboveW = new double[aboveCount];
            ParzenEstimator upper;
            if (_columns[d] is { } column)
            {
                var aboveLogW = new double[aboveCount];
                var cache = new MassCache(new double[aboveCount], new double[aboveCount]);
                var position = new int[aboveCount];
                int j = 0;
                for (int p = 0; p < column.Count; p++)
                {
                    int id = column.Ids[p];
                    if (_isBelow[id]) continue;
                    int r = _rank[id];
                    aboveValues[j] = column.Values[p];
                    aboveW[j] = aboveWeights[r];
                    aboveLogW[j] = aboveLogWeights[r];
                    cache.Sigma[j] = column.Sigma[p];
                    cache.LogMass[j] = column.LogMass[p];
                    position[j++] = p;
                }
                upper = ParzenEstimator.Build(kind, new[] { aboveValues }, aboveW, _options, sortedByFirstDimension: true, cache, aboveLogW);
                for (j = 0; j < aboveCount; j++)
                {
                    column.Sigma[position[j]] = cache.Sigma[j];
                    column.LogMass[position[j]] = cache.LogMass[j];
                }
            }
            else
            {
                int j = 0;
                foreach (var o in _bySeq)
                {
                    if (_isBelow[o.Id]) continue;
                    aboveValues[j] = Coordinate(o, d);
                    aboveW[j++] = aboveWeights[_rank[o.Id]];
                }
                upper = ParzenEstimator.Build(kind, new[] { aboveValues }, aboveW, _options);
            }

            var samples = lower.Sample(_tpeRandom, _options.EiCandidates);
            SnapColumn(d, samples[0]);
            var logL = lower.LogPdf(samples);
            var logG = upper.LogPdf(samples);
            result[d] = FromCoordinate(d, samples[0][ArgMaxDifference(logL, logG)]);
        }
        return result;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private double[] ProposeMultivariate(List<Observation> below, double[] aboveWeights)
    {
        var active = Enumerable.Range(0, Dimensions.Count).Where(d => !Dimensions[d].Domain.IsSingleValued).ToArray();
        var result = new double[Dimensions.Count];
        for (int d = 0; d < result.Length; d++)
            if (Dimensions[d].Domain.IsSingleValued) result[d] = Dimensions[d].Domain.Snap(0.5);
        if (active.Length == 0) return result;
        var kinds = active.Select(d => _kinds[d]).ToArray();
        var belowWeights = CheckedWeights(below.Count).AsSpan(0, below.Count).ToArray();
        var belowColumns = active.Select(d => below.Select(o => Coordinate(o, d)).ToArray()).ToArray();
        var lower = ParzenEstimator.Build(kinds, belowColumns, belowWeights, _options);
        var aboveList = _bySeq.Where(o => !_isBelow[o.Id]).ToList();
        var aboveColumns = active.Select(d => aboveList.Select(o => Coordinate(o, d)).ToArray()).ToArray();
        var upper = ParzenEstimator.Build(kinds, aboveColumns, aboveList.Select(o => aboveWeights[_rank[o.Id]]).ToArray(), _options);
        var samples = lower.Sample(_tpeRandom, _options.EiCandidates);
        for (int i = 0; i < active.Length; i++) SnapColumn(active[i], samples[i]);
        int best = ArgMaxDifference(lower.LogPdf(samples), upper.LogPdf(samples));
        for (int i = 0; i < active.Length; i++) result[active[i]] = FromCoordinate(active[i], samples[i][best]);
        return result;
    }

    /// <summary>The first index of the largest log l - log g (numpy's argmax).</summary>
    private static int ArgMaxDifference(double[] logL, double[] logG)
    {
        int best = 0;
        double bestScore = double.NaN;
        for (int s = 0; s < logL.Length; s++)
        {
            double score = logL[s] - logG[s];
            if (double.IsNaN(bestScore) && !double.IsNaN(score) || score > bestScore)
            {
                best = s;
                bestScore = score;
            }
        }
        return best;
    }

    /// <summary>An observation's coordinate as the estimator sees it: the unit value, or the category index.</summary>
    private double Coordinate(Observation o, int d) =>
        _kinds[d].Kind == KernelKind.Categorical ? Math.Min((long)Math.Floor(o.Unit[d] * _kinds[d].Cells), _kinds[d].Cells - 1) : o.Unit[d];

    private double FromCoordinate(int d, double coordinate) =>
        _kinds[d].Kind == KernelKind.Categorical ? (coordinate + 0.5) / _kinds[d].Cells : coordinate;

    /// <summary>Snaps raw samples to the domain's values (Optuna's <c>_transform_from_uniform</c>), so their likelihood is the one of the value that would run.</summary>
    private void SnapColumn(int d, double[] column)
    {
        if (_kinds[d].Kind == KernelKind.Categorical) return;
        var domain = Dimensions[d].Domain;
        for (int s = 0; s < column.Length; s++) column[s] = domain.Snap(column[s]);
    }

    private void Add(Observation o)
    {
        Insert(o);
        _finishedCount++;
    }

    private void Insert(Observation o)
    {
        o.Id = _nextId++;
        if (o.Id >= _isBelow.Length)
        {
            Array.Resize(ref _isBelow, _isBelow.Length * 2);
            Array.Resize(ref _rank, _rank.Length * 2);
        }
        InsertSorted(_byLoss, o, CompareLoss);
        InsertSorted(_bySeq, o, (a, b) => a.Seq.CompareTo(b.Seq));
        for (int d = 0; d < _columns.Length; d++) _columns[d]?.Insert(o.Unit[d], o.Seq, o.Id);
    }

    private void Remove(Observation o)
    {
        _byLoss.Remove(o);
        _bySeq.Remove(o);
        foreach (var column in _columns) column?.Remove(o.Id);
    }

    private static int CompareLoss(Observation a, Observation b)
    {
        int c = a.Step.CompareTo(b.Step);
        if (c != 0) return c;
        c = a.Loss.CompareTo(b.Loss);
        return c != 0 ? c : a.Seq.CompareTo(b.Seq);
    }

    private static void InsertSorted(List<Observation> list, Observation o, Comparison<Observation> compare)
    {
        int lo = 0, hi = list.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (compare(list[mid], o) <= 0) lo = mid + 1;
            else hi = mid;
        }
        list.Insert(lo, o);
    }

    protected override void SaveOwnState(JsonObject state)
    {
        state["tpe_random"] = _tpeRandom.SaveState();
        state["next_seq"] = _nextSeq;
        state["observations"] = new JsonArray(_bySeq.Where(o => !o.Running).Select(o => (JsonNode?)new JsonObject
        {
            ["seq"] = o.Seq,
            ["step"] = Number(o.Step),
            ["loss"] = Number(o.Loss),
            ["unit"] = new JsonArray(o.Unit.Select(u => (JsonNode?)JsonValue.Create(u)).ToArray()),
        }).ToArray());
        state["live"] = new JsonArray(_live.OrderBy(kv => kv.Value.Seq).Select(kv => (JsonNode?)new JsonObject
        {
            ["trial_id"] = kv.Key,
            ["seq"] = kv.Value.Seq,
            ["unit"] = new JsonArray(kv.Value.Unit.Select(u => (JsonNode?)JsonValue.Create(u)).ToArray()),
            ["step"] = kv.Value.HasIntermediate ? kv.Value.Step : null,
            ["loss"] = kv.Value.HasIntermediate ? Number(kv.Value.Loss) : null,
        }).ToArray());
    }

    protected override void RestoreOwnState(JsonNode state)
    {
        if (state["tpe_random"] is { } random) _tpeRandom = SearchRandom.FromState(random);
        _nextSeq = state["next_seq"]?.GetValue<int>() ?? _nextSeq;
        _byLoss.Clear();
        _bySeq.Clear();
        foreach (var column in _columns) column?.Clear();
        _live.Clear();
        _finishedCount = 0;
        if (state["observations"] is JsonArray observations)
            foreach (var node in observations)
                Add(new Observation(node!["seq"]!.GetValue<int>(), Parse(node["step"]), Parse(node["loss"]), Units(node["unit"]), running: false));
        if (state["live"] is JsonArray live)
            foreach (var node in live)
            {
                var trial = new LiveTrial(node!["seq"]!.GetValue<int>(), Units(node["unit"]));
                if (node["step"] is { } step) trial.Restore(step.GetValue<double>(), Parse(node["loss"]));
                _live[node["trial_id"]!.GetValue<string>()] = trial;
                if (_options.ConstantLiar)
                {
                    trial.Liar = new Observation(trial.Seq, double.PositiveInfinity, double.PositiveInfinity, trial.Unit, running: true);
                    Insert(trial.Liar);
                }
            }
    }

    private static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString("R", CultureInfo.InvariantCulture));

    private static double Parse(JsonNode? node) => node is JsonValue v && v.TryGetValue<double>(out var d)
        ? d
        : double.Parse(node?.GetValue<string>() ?? "NaN", NumberStyles.Float, CultureInfo.InvariantCulture);

    private static double[] Units(JsonNode? node) => node is JsonArray a ? a.Select(x => x!.GetValue<double>()).ToArray() : Array.Empty<double>();

    /// <summary>A completed, pruned or (constant liar) running trial as TPE ranks it: (step, loss) as Optuna's observation pairs.</summary>
    private sealed class Observation(int seq, double step, double loss, double[] unit, bool running)
    {
        public int Seq { get; } = seq;

        /// <summary>-∞ for completed trials, minus the last step for pruned ones, +∞ for running ones.</summary>
        public double Step { get; } = step;

        public double Loss { get; } = loss;

        public double[] Unit { get; } = unit;

        public bool Running { get; } = running;

        /// <summary>Dense index of this observation in the searcher's per-observation arrays.</summary>
        public int Id { get; set; }
    }

    /// <summary>
    /// One numeric dimension's observations sorted by (value, trial order), with the bandwidth and log mass each had in
    /// g(x) last time: contiguous arrays, so building g(x) is one linear scan.
    /// </summary>
    private sealed class SortedColumn
    {
        public double[] Values { get; private set; } = new double[64];

        public int[] Seqs { get; private set; } = new int[64];

        public int[] Ids { get; private set; } = new int[64];

        public double[] Sigma { get; private set; } = new double[64];

        public double[] LogMass { get; private set; } = new double[64];

        public int Count { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Insert(double value, int seq, int id)
        {
            int lo = 0, hi = Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (Values[mid] < value || (Values[mid] == value && Seqs[mid] <= seq)) lo = mid + 1;
                else hi = mid;
            }
            if (Count == Values.Length)
            {
                int size = Values.Length * 2;
                Values = Grow(Values, size);
                Seqs = Grow(Seqs, size);
                Ids = Grow(Ids, size);
                Sigma = Grow(Sigma, size);
                LogMass = Grow(LogMass, size);
            }
            int tail = Count - lo;
            Array.Copy(Values, lo, Values, lo + 1, tail);
            Array.Copy(Seqs, lo, Seqs, lo + 1, tail);
            Array.Copy(Ids, lo, Ids, lo + 1, tail);
            Array.Copy(Sigma, lo, Sigma, lo + 1, tail);
            Array.Copy(LogMass, lo, LogMass, lo + 1, tail);
            Values[lo] = value;
            Seqs[lo] = seq;
            Ids[lo] = id;
            Sigma[lo] = double.NaN;
            LogMass[lo] = double.NaN;
            Count++;
        }

        public void Remove(int id)
        {
            int at = Array.IndexOf(Ids, id, 0, Count);
            if (at < 0) return;
            int tail = Count - at - 1;
            Array.Copy(Values, at + 1, Values, at, tail);
            Array.Copy(Seqs, at + 1, Seqs, at, tail);
            Array.Copy(Ids, at + 1, Ids, at, tail);
            Array.Copy(Sigma, at + 1, Sigma, at, tail);
            Array.Copy(LogMass, at + 1, LogMass, at, tail);
            Count--;
        }

        public void Clear() => Count = 0;

        private static T[] Grow<T>(T[] array, int size)
        {
            var grown = new T[size];
            Array.Copy(array, grown, array.Length);
            return grown;
        }
    }

    /// <summary>A suggested trial not finished yet, with its latest intermediate value (Optuna's intermediate_values at the largest step).</summary>
    private sealed class LiveTrial(int seq, double[] unit)
    {
        public int Seq { get; } = seq;

        public double[] Unit { get; } = unit;

        public bool HasIntermediate { get; private set; }

        public double Step { get; private set; } = double.NegativeInfinity;

        /// <summary>The loss at <see cref="Step"/>; NaN when the metric was reported as NaN.</summary>
        public double Loss { get; private set; } = double.NaN;

        public Observation? Liar { get; set; }

        public void Report(TrialResult result, string? metric, MetricMode? mode)
        {
            if (metric is null || !result.TryGetDouble(metric, out var value)) return;
            // Optuna ignores a second report for a step it already has.
            if (HasIntermediate && result.TrainingIteration <= Step) return;
            HasIntermediate = true;
            Step = result.TrainingIteration;
            Loss = mode == MetricMode.Max ? -value : value;
        }

        public void Restore(double step, double loss)
        {
            HasIntermediate = true;
            Step = step;
            Loss = loss;
        }
    }
}
