using System.Text.Json.Nodes;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using static TorchTrials.Tests.Search.SearchTestKit;

namespace TorchTrials.Tests.Search.Limiter;

/// <summary>Ray's ConcurrencyLimiter: a cap on live suggestions, and batches that reach the searcher only when all finished.</summary>
public class ConcurrencyLimiterTests
{
    private static SearchSpace Space() => new() { ["x"] = Domain.Uniform(0, 1) };

    [Fact]
    public void At_most_max_concurrent_suggestions_are_live()
    {
        var limiter = Configured(new ConcurrencyLimiter(new RecordingSearcher(), maxConcurrent: 2), Space());

        Assert.Equal(SuggestionKind.Config, limiter.Suggest("a").Kind);
        Assert.Equal(SuggestionKind.Config, limiter.Suggest("b").Kind);
        Assert.Same(Suggestion.NotNow, limiter.Suggest("c"));

        limiter.OnTrialComplete("a", Loss(1), TrialOutcome.Completed);
        Assert.Equal(SuggestionKind.Config, limiter.Suggest("c").Kind);
        Assert.Equal(new[] { "b", "c" }, limiter.LiveTrials.Order());
    }

    [Fact]
    public void Without_batch_each_completion_reaches_the_searcher_at_once()
    {
        var inner = new RecordingSearcher();
        var limiter = Configured(new ConcurrencyLimiter(inner, 2), Space());
        limiter.Suggest("a");
        limiter.Suggest("b");
        limiter.OnTrialComplete("a", Loss(1), TrialOutcome.Completed);
        Assert.Equal(new[] { "a" }, inner.Completed);
    }

    [Fact]
    public void With_batch_completions_are_held_until_the_whole_batch_finished()
    {
        var inner = new RecordingSearcher();
        var limiter = Configured(new ConcurrencyLimiter(inner, 2, batch: true), Space());
        limiter.Suggest("a");
        limiter.Suggest("b");

        limiter.OnTrialComplete("b", Loss(2), TrialOutcome.Completed);
        Assert.Empty(inner.Completed);
        Assert.Same(Suggestion.NotNow, limiter.Suggest("c"));

        limiter.OnTrialComplete("a", Loss(1), TrialOutcome.Pruned);
        Assert.Equal(new[] { "b", "a" }, inner.Completed);
        Assert.Equal(TrialOutcome.Pruned, inner.Outcomes["a"]);
        Assert.Equal(SuggestionKind.Config, limiter.Suggest("c").Kind);
    }

    [Fact]
    public void Completions_of_unknown_trials_are_ignored_and_results_pass_through()
    {
        var inner = new RecordingSearcher();
        var limiter = Configured(new ConcurrencyLimiter(inner, 1), Space());
        limiter.Suggest("a");
        limiter.OnTrialComplete("zzz", Loss(1), TrialOutcome.Completed);
        limiter.OnTrialResult("a", Loss(3));
        Assert.Empty(inner.Completed);
        Assert.Equal(new[] { "a" }, inner.Results);
    }

    [Fact]
    public void A_repeated_live_id_and_a_bad_limit_are_refused()
    {
        var limiter = Configured(new ConcurrencyLimiter(new RecordingSearcher(), 2), Space());
        limiter.Suggest("a");
        Assert.Contains("'a'", Assert.Throws<ArgumentException>(() => limiter.Suggest("a")).Message);
        Assert.Contains("ConcurrencyLimiter.maxConcurrent", Assert.Throws<ArgumentOutOfRangeException>(() => new ConcurrencyLimiter(new RecordingSearcher(), 0)).Message);
    }

    [Fact]
    public void State_round_trips_live_trials_and_held_completions()
    {
        var inner = new RecordingSearcher();
        var limiter = Configured(new ConcurrencyLimiter(inner, 2, batch: true), Space());
        limiter.Suggest("a");
        limiter.Suggest("b");
        limiter.OnTrialComplete("a", Loss(1), TrialOutcome.Completed);
        var state = JsonNode.Parse(limiter.SaveState().ToJsonString())!;

        var inner2 = new RecordingSearcher();
        var restored = Configured(new ConcurrencyLimiter(inner2, 2, batch: true), Space());
        restored.RestoreState(state);
        Assert.Same(Suggestion.NotNow, restored.Suggest("c"));
        restored.OnTrialComplete("b", Loss(2), TrialOutcome.Completed);
        Assert.Equal(new[] { "a", "b" }, inner2.Completed);
        Assert.Equal(1.0, inner2.Values["a"]);
    }
}

/// <summary>A searcher that records what it is told and suggests x = 0.5.</summary>
internal sealed class RecordingSearcher : ISearcher
{
    public List<string> Suggested { get; } = new();

    public List<string> Completed { get; } = new();

    public List<string> Results { get; } = new();

    public Dictionary<string, TrialOutcome> Outcomes { get; } = new();

    public Dictionary<string, double> Values { get; } = new();

    public string? Metric { get; private set; }

    public MetricMode? Mode { get; private set; }

    public bool SetSearchProperties(string? metric, MetricMode? mode, SearchSpace space)
    {
        Metric ??= metric;
        Mode ??= mode;
        return true;
    }

    public Suggestion Suggest(string trialId)
    {
        Suggested.Add(trialId);
        return Suggestion.Of(TrialConfig.From(("x", 0.5 + Suggested.Count)));
    }

    public void OnTrialResult(string trialId, TrialResult result) => Results.Add(trialId);

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome)
    {
        Completed.Add(trialId);
        Outcomes[trialId] = outcome;
        if (result is not null && Metric is not null && result.TryGetDouble(Metric, out var v)) Values[trialId] = v;
    }

    public JsonNode SaveState() => new JsonObject();

    public void RestoreState(JsonNode state) { }
}
