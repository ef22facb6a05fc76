using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>Settings of a <see cref="SearchGenerator"/>.</summary>
public sealed record SearchGeneratorOptions
{
    /// <summary>The experiment's metric, passed to the searcher unless it has its own.</summary>
    public string? Metric { get; init; }

    public MetricMode? Mode { get; init; }

    /// <summary>Trial ids are "{prefix}_{index:D5}"; by default a prefix drawn for this experiment and kept in the saved state (<see cref="TrialIds"/>).</summary>
    public string? TrialIdPrefix { get; init; }
}

/// <summary>
/// Turns a searcher into trials (Ray Tune's <c>SearchGenerator</c>, <c>ray/tune/search/search_generator.py</c>): asks
/// it for a config whenever the controller has room, lays the config over the template's base config, and stops after
/// <c>numSamples</c> trials or when the searcher says it is finished. Ids are "{prefix}_{index:D5}" (index from 0);
/// experiment tags are Ray's "{n}_{key=value,...}" with n counted from 1 and the varying values sorted by key
/// (<see cref="ConfigValues.FormatTag"/>); evaluated params are the suggested values other than the space's constants.
/// </summary>
public sealed class SearchGenerator : ISearchAlgorithm
{
    private readonly ISearcher _searcher;
    private readonly SearchSpace _space;
    private readonly TrialTemplate _template;
    private readonly int _numSamples;
    private readonly string? _explicitPrefix;
    private string _prefix;
    private int _counter;
    private bool _finished;

    public SearchGenerator(ISearcher searcher, SearchSpace space, TrialTemplate template, int numSamples = 1, SearchGeneratorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(searcher);
        ArgumentNullException.ThrowIfNull(template);
        if (numSamples < 1) throw new ArgumentOutOfRangeException(nameof(numSamples), $"SearchGenerator.numSamples must be at least 1, got {numSamples}");
        options ??= new SearchGeneratorOptions();
        _space = space.Validate();
        _searcher = searcher;
        _template = template;
        _numSamples = numSamples;
        _explicitPrefix = options.TrialIdPrefix;
        _prefix = _explicitPrefix ?? TrialIds.NewPrefix();
        if (!searcher.SetSearchProperties(options.Metric, options.Mode, space))
            throw new ArgumentException(
                $"{searcher.GetType().Name} is already configured with another metric, mode or search space than this experiment's (metric {options.Metric ?? "unset"}, mode {options.Mode?.ToString() ?? "unset"})");
    }

    public ISearcher Searcher => _searcher;

    public Trial? NextTrial()
    {
        if (IsFinished) return null;
        string trialId = TrialIds.Format(_prefix, _counter);
        var suggestion = _searcher.Suggest(trialId);
        switch (suggestion.Kind)
        {
            case SuggestionKind.Finished:
                _finished = true;
                return null;
            case SuggestionKind.NotNow:
                return null;
        }
        var config = suggestion.Config!;
        var constants = _space.Constants;
        var evaluated = config.Where(kv => !constants.ContainsKey(kv.Key)).ToImmutableDictionary(StringComparer.Ordinal);
        _counter++;
        string tag = evaluated.Count == 0
            ? _counter.ToString(CultureInfo.InvariantCulture)
            : $"{_counter.ToString(CultureInfo.InvariantCulture)}_{ConfigValues.FormatTag(evaluated)}";
        return _template.CreateTrial(trialId, config, tag, evaluated);
    }

    public bool IsFinished => _counter >= _numSamples || _finished;

    public void SetFinished() => _finished = true;

    public int TotalSamples => _numSamples;

    public void OnTrialResult(string trialId, TrialResult result) => _searcher.OnTrialResult(trialId, result);

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome) => _searcher.OnTrialComplete(trialId, result, outcome);

    public JsonNode? SaveState() => new JsonObject
    {
        ["prefix"] = _prefix,
        ["counter"] = _counter,
        ["finished"] = _finished,
        ["searcher"] = _searcher.SaveState(),
    };

    public void RestoreState(JsonNode state)
    {
        _prefix = _explicitPrefix ?? state["prefix"]?.GetValue<string>() ?? _prefix;
        _counter = state["counter"]?.GetValue<int>() ?? 0;
        _finished = state["finished"]?.GetValue<bool>() ?? false;
        if (state["searcher"] is { } searcherState) _searcher.RestoreState(searcherState);
    }
}
