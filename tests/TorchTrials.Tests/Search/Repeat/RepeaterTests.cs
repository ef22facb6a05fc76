using System.Text.Json.Nodes;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Search.Limiter;
using static TorchTrials.Tests.Search.SearchTestKit;

namespace TorchTrials.Tests.Search.Repeat;

/// <summary>Ray's Repeater: each config runs `repeat` times, and the searcher hears the group's averaged metric once.</summary>
public class RepeaterTests
{
    private static SearchSpace Space() => new() { ["x"] = Domain.Uniform(0, 1) };

    [Fact]
    public void Each_config_is_repeated_with_its_index_in_the_group()
    {
        var inner = new RecordingSearcher();
        var repeater = Configured(new Repeater(inner, repeat: 3), Space());

        var configs = Enumerable.Range(0, 6).Select(i => repeater.Suggest($"t{i}").Config!).ToList();

        Assert.Equal(new[] { "t0", "t3" }, inner.Suggested);
        Assert.Equal(new object?[] { 0L, 1L, 2L, 0L, 1L, 2L }, configs.Select(c => c[Repeater.TrialIndexKey]));
        Assert.Single(configs.Take(3).Select(c => c["x"]).Distinct());
        Assert.NotEqual(configs[0]["x"], configs[3]["x"]);
    }

    [Fact]
    public void Without_set_index_the_config_is_passed_unchanged()
    {
        var repeater = Configured(new Repeater(new RecordingSearcher(), repeat: 2, setIndex: false), Space());
        Assert.False(repeater.Suggest("t0").Config!.ContainsKey(Repeater.TrialIndexKey));
    }

    [Fact]
    public void The_searcher_hears_the_nan_mean_once_every_member_finished()
    {
        var inner = new RecordingSearcher();
        var repeater = Configured(new Repeater(inner, repeat: 3), Space());
        for (int i = 0; i < 3; i++) repeater.Suggest($"t{i}");

        repeater.OnTrialComplete("t1", Loss(2), TrialOutcome.Completed);
        repeater.OnTrialComplete("t0", Loss(4), TrialOutcome.Completed);
        Assert.Empty(inner.Completed);
        repeater.OnTrialResult("t2", Loss(100));
        repeater.OnTrialComplete("t2", null, TrialOutcome.Errored);

        Assert.Equal(new[] { "t0" }, inner.Completed);
        Assert.Equal(3.0, inner.Values["t0"]);
        Assert.Equal(TrialOutcome.Completed, inner.Outcomes["t0"]);
        Assert.Empty(inner.Results);
    }

    [Fact]
    public void An_incomplete_last_group_is_never_reported()
    {
        var inner = new RecordingSearcher();
        var repeater = Configured(new Repeater(inner, repeat: 2), Space());
        repeater.Suggest("t0");
        repeater.OnTrialComplete("t0", Loss(1), TrialOutcome.Completed);
        Assert.Empty(inner.Completed);
    }

    [Fact]
    public void Not_now_from_the_searcher_passes_through_and_starts_no_group()
    {
        var limited = new ConcurrencyLimiter(new RecordingSearcher(), 1);
        var repeater = Configured(new Repeater(limited, repeat: 2), Space());
        repeater.Suggest("t0");
        repeater.Suggest("t1");
        Assert.Same(Suggestion.NotNow, repeater.Suggest("t2"));
        repeater.OnTrialComplete("t0", Loss(1), TrialOutcome.Completed);
        repeater.OnTrialComplete("t1", Loss(3), TrialOutcome.Completed);
        var next = repeater.Suggest("t2");
        Assert.Equal(0L, next.Config![Repeater.TrialIndexKey]);
    }

    [Fact]
    public void State_round_trips_groups_and_scores()
    {
        var repeater = Configured(new Repeater(new RecordingSearcher(), repeat: 2), Space());
        var first = repeater.Suggest("t0").Config!;
        repeater.OnTrialComplete("t0", Loss(1), TrialOutcome.Completed);
        var state = JsonNode.Parse(repeater.SaveState().ToJsonString())!;

        var inner = new RecordingSearcher();
        var restored = Configured(new Repeater(inner, repeat: 2), Space());
        restored.RestoreState(state);
        var second = restored.Suggest("t1").Config!;
        Assert.Equal(first["x"], second["x"]);
        Assert.Equal(1L, second[Repeater.TrialIndexKey]);
        restored.OnTrialComplete("t1", Loss(5), TrialOutcome.Completed);
        Assert.Equal(3.0, inner.Values["t0"]);
    }

    [Fact]
    public void Repeat_below_one_is_refused() =>
        Assert.Contains("Repeater.repeat", Assert.Throws<ArgumentOutOfRangeException>(() => new Repeater(new RecordingSearcher(), 0)).Message);
}
