using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Ray Tune's <c>ConcurrencyLimiter</c> (<c>ray/tune/search/concurrency_limiter.py</c>): at most
/// <c>maxConcurrent</c> suggestions of the wrapped searcher are live at once; beyond that it answers
/// <see cref="Suggestion.NotNow"/>. With <c>batch</c> it holds back completions until every live trial has finished,
/// then tells the wrapped searcher all of them at once (so a model is refit on whole batches). Completions of trials it
/// did not suggest are ignored, intermediate results pass through.
/// </summary>
public sealed class ConcurrencyLimiter : ISearcher
{
    private readonly ISearcher _searcher;
    private readonly HashSet<string> _live = new(StringComparer.Ordinal);
    private readonly List<(string TrialId, TrialResult? Result, TrialOutcome Outcome)> _cached = new();
    private int _unfinished;

    public ConcurrencyLimiter(ISearcher searcher, int maxConcurrent, bool batch = false)
    {
        ArgumentNullException.ThrowIfNull(searcher);
        if (maxConcurrent < 1) throw new ArgumentOutOfRangeException(nameof(maxConcurrent), $"ConcurrencyLimiter.maxConcurrent must be at least 1, got {maxConcurrent}");
        _searcher = searcher;
        MaxConcurrent = maxConcurrent;
        Batch = batch;
    }

    public ISearcher Searcher => _searcher;

    public int MaxConcurrent { get; }

    public bool Batch { get; }

    /// <summary>Trials suggested and not yet passed on as finished.</summary>
    public IReadOnlyCollection<string> LiveTrials => _live;

    public string? Metric => _searcher.Metric;

    public MetricMode? Mode => _searcher.Mode;

    public bool SetSearchProperties(string? metric, MetricMode? mode, SearchSpace space) => _searcher.SetSearchProperties(metric, mode, space);

    public Suggestion Suggest(string trialId)
    {
        if (_live.Contains(trialId)) throw new ArgumentException($"trial id '{trialId}' must be unique: it is already live");
        if (_live.Count >= MaxConcurrent) return Suggestion.NotNow;
        var suggestion = _searcher.Suggest(trialId);
        if (suggestion.Kind == SuggestionKind.Config)
        {
            _live.Add(trialId);
            _unfinished++;
        }
        return suggestion;
    }

    public void OnTrialResult(string trialId, TrialResult result) => _searcher.OnTrialResult(trialId, result);

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome)
    {
        if (!_live.Contains(trialId)) return;
        if (Batch)
        {
            _cached.Add((trialId, result, outcome));
            _unfinished--;
            if (_unfinished > 0) return;
            foreach (var (id, r, o) in _cached)
            {
                _searcher.OnTrialComplete(id, r, o);
                _live.Remove(id);
            }
            _cached.Clear();
            _unfinished = 0;
            return;
        }
        _searcher.OnTrialComplete(trialId, result, outcome);
        _live.Remove(trialId);
        _unfinished--;
    }

    public JsonNode SaveState() => new JsonObject
    {
        ["live"] = new JsonArray(_live.Order(StringComparer.Ordinal).Select(id => (JsonNode?)JsonValue.Create(id)).ToArray()),
        ["unfinished"] = _unfinished,
        ["cached"] = new JsonArray(_cached.Select(c => (JsonNode?)new JsonObject
        {
            ["trial_id"] = c.TrialId,
            ["result"] = c.Result?.ToJsonObject(),
            ["outcome"] = c.Outcome.ToString(),
        }).ToArray()),
        ["searcher"] = _searcher.SaveState(),
    };

    public void RestoreState(JsonNode state)
    {
        _live.Clear();
        _cached.Clear();
        if (state["live"] is JsonArray live)
            foreach (var id in live) _live.Add(id!.GetValue<string>());
        _unfinished = state["unfinished"]?.GetValue<int>() ?? _live.Count;
        if (state["cached"] is JsonArray cached)
            foreach (var c in cached)
                _cached.Add((c!["trial_id"]!.GetValue<string>(),
                    c["result"] is JsonObject r ? ResultJson.Read(r) : null,
                    Enum.Parse<TrialOutcome>(c["outcome"]!.GetValue<string>())));
        if (state["searcher"] is { } inner) _searcher.RestoreState(inner);
    }
}
