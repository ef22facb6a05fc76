using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>Settings of a <see cref="BasicVariantGenerator"/>.</summary>
public sealed record BasicVariantOptions
{
    /// <summary>Same seed, same trials. When null a seed is drawn and kept in the saved state, so a resume continues the same stream.</summary>
    public long? Seed { get; init; }

    /// <summary>Configs to run first, each replacing one sample (Ray's <c>points_to_evaluate</c>); keys they leave out are searched as usual.</summary>
    public IReadOnlyList<TrialConfig> PointsToEvaluate { get; init; } = Array.Empty<TrialConfig>();

    /// <summary>At most this many produced trials unfinished at once; 0 for no limit.</summary>
    public int MaxConcurrent { get; init; }

    /// <summary>Draw the random values once per sample and keep them across that sample's grid variants (Ray's <c>constant_grid_search</c>).</summary>
    public bool ConstantGridSearch { get; init; }

    /// <summary>Trial ids are "{prefix}_{index:D5}"; by default a prefix drawn for this experiment and kept in the saved state (<see cref="TrialIds"/>).</summary>
    public string? TrialIdPrefix { get; init; }
}

/// <summary>
/// Grid and random search (Ray Tune's <c>BasicVariantGenerator</c>, <c>ray/tune/search/basic_variant.py</c> and
/// <c>variant_generator.py</c>). Each of the num_samples samples yields every combination of the grid values (grid keys
/// sorted, the first varying fastest, as Ray's <c>_grid_search_generator</c>); random dimensions are drawn independently
/// for every variant (or once per sample with <see cref="BasicVariantOptions.ConstantGridSearch"/>); sample_from entries
/// are resolved after what they read. Points to evaluate come first, one sample each, their values replacing the
/// domains they name (a grid key they set is no longer enumerated). Ids are "{prefix}_{index:D5}", tags "{index}_{values}",
/// both counted from 0 as Ray's <c>_TrialIterator</c>.
/// Deviation: the random values of variant j of sample b come from a stream derived from (seed, b, j) rather than one
/// shared numpy stream, so a resume regenerates exactly the remaining trials without replaying earlier ones.
/// </summary>
public sealed class BasicVariantGenerator : ISearchAlgorithm
{
    public bool SamplesIndependently => true;

    private readonly SearchSpace _space;
    private readonly TrialTemplate _template;
    private readonly int _numSamples;
    private readonly BasicVariantOptions _options;
    private readonly IReadOnlyList<SearchDimension> _grid;
    private readonly IReadOnlyList<SearchDimension> _random;
    private readonly HashSet<string> _live = new(StringComparer.Ordinal);
    private readonly string? _explicitPrefix;
    private long _seed;
    private string _prefix;
    private int _produced;
    private bool _finished;

    public BasicVariantGenerator(SearchSpace space, TrialTemplate template, int numSamples = 1, BasicVariantOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        if (numSamples < 1) throw new ArgumentOutOfRangeException(nameof(numSamples), $"BasicVariantGenerator.numSamples must be at least 1, got {numSamples}");
        _options = options ?? new BasicVariantOptions();
        if (_options.MaxConcurrent < 0) throw new ArgumentOutOfRangeException(nameof(options), $"BasicVariantOptions.MaxConcurrent must be 0 (no limit) or more, got {_options.MaxConcurrent}");
        _space = space.Validate();
        _template = template;
        _numSamples = numSamples;
        _grid = space.GridDimensions.OrderBy(d => d.Key, StringComparer.Ordinal).ToList();
        _random = space.RandomDimensions;
        for (int p = 0; p < _options.PointsToEvaluate.Count; p++)
            foreach (var key in _options.PointsToEvaluate[p].Keys)
                if (!space.ContainsKey(key))
                    throw new ArgumentException($"points_to_evaluate[{p}]: key '{key}' does not correspond to a key of the search space");
        _seed = _options.Seed ?? SearchRandom.NewSeed();
        _explicitPrefix = _options.TrialIdPrefix;
        _prefix = _explicitPrefix ?? TrialIds.NewPrefix();
        TotalSamples = CountTotal();
    }

    /// <summary>The seed in use (drawn at construction when none was given, restored on resume).</summary>
    public long Seed => _seed;

    public int TotalSamples { get; }

    public bool IsFinished => _finished || _produced >= TotalSamples;

    public void SetFinished() => _finished = true;

    public Trial? NextTrial()
    {
        if (IsFinished) return null;
        if (_options.MaxConcurrent > 0 && _live.Count >= _options.MaxConcurrent) return null;
        var trial = Create(_produced);
        _produced++;
        _live.Add(trial.Id);
        return trial;
    }

    public void OnTrialResult(string trialId, TrialResult result) { }

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome) => _live.Remove(trialId);

    public JsonNode? SaveState() => new JsonObject
    {
        ["seed"] = _seed,
        ["prefix"] = _prefix,
        ["produced"] = _produced,
        ["finished"] = _finished,
        ["live"] = new JsonArray(_live.Order(StringComparer.Ordinal).Select(id => (JsonNode?)JsonValue.Create(id)).ToArray()),
    };

    public void RestoreState(JsonNode state)
    {
        _seed = state["seed"]?.GetValue<long>() ?? _seed;
        _prefix = _explicitPrefix ?? state["prefix"]?.GetValue<string>() ?? _prefix;
        _produced = state["produced"]?.GetValue<int>() ?? 0;
        _finished = state["finished"]?.GetValue<bool>() ?? false;
        _live.Clear();
        if (state["live"] is JsonArray live)
            foreach (var id in live) _live.Add(id!.GetValue<string>());
    }

    /// <summary>The trial with overall index <paramref name="index"/>: finds its sample and its grid variant, then draws its values.</summary>
    private Trial Create(int index)
    {
        int sample = 0, offset = index;
        while (sample < _options.PointsToEvaluate.Count)
        {
            int count = GridCount(PresetFor(sample));
            if (offset < count) break;
            offset -= count;
            sample++;
        }
        if (sample >= _options.PointsToEvaluate.Count)
        {
            int perSample = GridCount(null);
            sample += offset / perSample;
            offset %= perSample;
        }
        var preset = PresetFor(sample);
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        int rest = offset;
        foreach (var dim in _grid)
        {
            if (preset?.ContainsKey(dim.Key) == true) continue;
            var categories = (CategoricalDomain)dim.Domain;
            values[dim.Key] = categories.Values[rest % categories.Values.Length];
            rest /= categories.Values.Length;
        }
        long sampleSeed = SearchRandom.Derive(_seed, sample);
        var random = new SearchRandom(_options.ConstantGridSearch ? sampleSeed : SearchRandom.Derive(sampleSeed, offset));
        foreach (var dim in _random)
        {
            // Drawn even when a preset overrides the key, so a key's stream does not depend on which keys were preset.
            var value = dim.Domain.Sample(random);
            if (preset?.ContainsKey(dim.Key) != true) values[dim.Key] = value;
        }
        if (preset is not null)
            foreach (var (key, value) in preset) values[key] = value;
        var config = _space.Resolve(values);
        var constants = _space.Constants;
        var evaluated = config.Where(kv => !constants.ContainsKey(kv.Key) || preset?.ContainsKey(kv.Key) == true)
            .ToImmutableDictionary(StringComparer.Ordinal);
        string number = index.ToString(CultureInfo.InvariantCulture);
        string tag = evaluated.Count == 0 ? number : $"{number}_{ConfigValues.FormatTag(evaluated)}";
        return _template.CreateTrial(TrialIds.Format(_prefix, index), config, tag, evaluated);
    }

    /// <summary>The preset config of sample <paramref name="sample"/>, or null when it is a plain sample.</summary>
    private TrialConfig? PresetFor(int sample) => sample < _options.PointsToEvaluate.Count ? _options.PointsToEvaluate[sample] : null;

    private int GridCount(TrialConfig? preset)
    {
        long count = 1;
        foreach (var dim in _grid)
            if (preset?.ContainsKey(dim.Key) != true)
                count *= ((CategoricalDomain)dim.Domain).Values.Length;
        if (count > int.MaxValue) throw new ArgumentException($"the grid has {count} combinations, more than can be run");
        return (int)count;
    }

    private int CountTotal()
    {
        long total = 0;
        int points = _options.PointsToEvaluate.Count;
        for (int p = 0; p < points; p++) total += GridCount(_options.PointsToEvaluate[p]);
        if (_numSamples > points) total += (long)(_numSamples - points) * GridCount(null);
        if (total > int.MaxValue) throw new ArgumentException($"the sweep has {total} trials, more than can be run");
        return (int)total;
    }
}
