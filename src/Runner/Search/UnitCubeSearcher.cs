using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Base of searchers that only see the unit cube [0, 1)^d: each searched dimension of the space (grid ones as
/// categories) is one coordinate, mapped to and from values by its <see cref="UnitDomain"/>; constants and sample_from
/// entries are filled in by <see cref="SearchSpace.Resolve"/>. Handles the search properties, a seeded random source,
/// points to evaluate first (Ray's <c>points_to_evaluate</c>; missing keys are drawn at random), and state for resume.
/// </summary>
public abstract class UnitCubeSearcher : ISearcher
{
    private readonly IReadOnlyList<TrialConfig> _points;
    private int _pointsUsed;

    protected UnitCubeSearcher(string? metric, MetricMode? mode, long? seed, IEnumerable<TrialConfig>? pointsToEvaluate)
    {
        Metric = metric;
        Mode = mode;
        Seed = seed ?? SearchRandom.NewSeed();
        Random = new SearchRandom(Seed);
        _points = pointsToEvaluate?.ToList() ?? new List<TrialConfig>();
    }

    public string? Metric { get; private set; }

    public MetricMode? Mode { get; private set; }

    /// <summary>The seed the random source started from (drawn at construction when none was given).</summary>
    public long Seed { get; }

    public SearchSpace? Space { get; private set; }

    /// <summary>The coordinates of the unit cube, one per searched dimension, in the space's order.</summary>
    protected IReadOnlyList<SearchDimension> Dimensions { get; private set; } = Array.Empty<SearchDimension>();

    protected SearchRandom Random { get; private set; }

    public virtual bool SetSearchProperties(string? metric, MetricMode? mode, SearchSpace space)
    {
        if (Metric is not null && metric is not null && Metric != metric) return false;
        if (Mode is not null && mode is not null && Mode != mode) return false;
        if (Space is not null && !ReferenceEquals(Space, space)) return false;
        Metric ??= metric;
        Mode ??= mode;
        if (Space is null)
        {
            space.Validate();
            var dimensions = space.SearchDimensions;
            foreach (var point in _points) PointToUnit(point, dimensions, checkOnly: true);
            Space = space;
            Dimensions = dimensions;
            OnSpaceSet();
        }
        return true;
    }

    public Suggestion Suggest(string trialId)
    {
        var space = Space ?? throw new InvalidOperationException($"{GetType().Name} has no search space: call SetSearchProperties first (SearchGenerator does)");
        var early = BeforeSuggest(trialId);
        if (early is not null) return early;
        double[] unit;
        Dictionary<string, object?> values;
        if (_pointsUsed < _points.Count)
        {
            (unit, values) = PointToUnit(_points[_pointsUsed++], Dimensions, checkOnly: false);
        }
        else
        {
            unit = Propose();
            values = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (int i = 0; i < Dimensions.Count; i++)
            {
                var value = Dimensions[i].Domain.FromUnit(unit[i]);
                values[Dimensions[i].Key] = value;
                unit[i] = Dimensions[i].Domain.ToUnit(value);
            }
        }
        var config = space.Resolve(values);
        OnSuggested(trialId, unit);
        return Suggestion.Of(config);
    }

    /// <summary>A point of the unit cube for the next trial (values are snapped to the domains afterwards).</summary>
    protected abstract double[] Propose();

    /// <summary>A suggestion to give instead of proposing (for example an error about missing settings), or null to go on.</summary>
    protected virtual Suggestion? BeforeSuggest(string trialId) => null;

    /// <summary>Records that <paramref name="trialId"/> runs the point <paramref name="unit"/> (snapped to the domains' values).</summary>
    protected virtual void OnSuggested(string trialId, double[] unit) { }

    /// <summary>Called once the space is known.</summary>
    protected virtual void OnSpaceSet() { }

    public virtual void OnTrialResult(string trialId, TrialResult result) { }

    public abstract void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome);

    /// <summary>A uniformly random point of the unit cube.</summary>
    protected double[] RandomPoint()
    {
        var u = new double[Dimensions.Count];
        for (int i = 0; i < u.Length; i++) u[i] = Random.NextDouble();
        return u;
    }

    /// <summary>The metric of <paramref name="result"/> as a loss (negated when maximising); false when absent or NaN.</summary>
    protected bool TryGetLoss(TrialResult? result, out double loss)
    {
        loss = double.NaN;
        if (result is null || Metric is null || !result.TryGetDouble(Metric, out var value) || double.IsNaN(value)) return false;
        loss = Mode == MetricMode.Max ? -value : value;
        return true;
    }

    public JsonNode SaveState()
    {
        var state = new JsonObject
        {
            ["seed"] = Seed,
            ["random"] = Random.SaveState(),
            ["points_used"] = _pointsUsed,
        };
        SaveOwnState(state);
        return state;
    }

    public void RestoreState(JsonNode state)
    {
        if (state["random"] is { } random) Random = SearchRandom.FromState(random);
        _pointsUsed = state["points_used"]?.GetValue<int>() ?? _pointsUsed;
        RestoreOwnState(state);
    }

    /// <summary>Adds the searcher's own state (observations, pending trials) to <paramref name="state"/>.</summary>
    protected virtual void SaveOwnState(JsonObject state) { }

    protected virtual void RestoreOwnState(JsonNode state) { }

    private (double[] Unit, Dictionary<string, object?> Values) PointToUnit(TrialConfig point, IReadOnlyList<SearchDimension> dimensions, bool checkOnly)
    {
        var byKey = dimensions.Select((d, i) => (d.Key, i)).ToDictionary(x => x.Key, x => x.i, StringComparer.Ordinal);
        var unit = new double[dimensions.Count];
        var given = new bool[dimensions.Count];
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in point)
        {
            if (!byKey.TryGetValue(key, out int i))
                throw new ArgumentException($"points_to_evaluate: key '{key}' is not a searched key of the search space");
            try
            {
                unit[i] = dimensions[i].Domain.ToUnit(value);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"points_to_evaluate: key '{key}': {e.Message}");
            }
            given[i] = true;
            values[key] = value;
        }
        if (checkOnly) return (unit, values);
        for (int i = 0; i < dimensions.Count; i++)
        {
            if (given[i]) continue;
            var value = dimensions[i].Domain.FromUnit(Random.NextDouble());
            values[dimensions[i].Key] = value;
            unit[i] = dimensions[i].Domain.ToUnit(value);
        }
        return (unit, values);
    }
}
