using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Ray Tune's <c>Repeater</c> (<c>ray/tune/search/repeater.py</c>): each config of the wrapped searcher is run
/// <c>repeat</c> times (a group; the first trial is the one the wrapped searcher knows). With <c>setIndex</c> every
/// trial's config gets <see cref="TrialIndexKey"/> = its index in the group (0 .. repeat - 1), usable as a seed. When
/// every trial of a group has finished, the wrapped searcher hears once, for the first trial, with the nan-mean of the
/// group's metric values (a trial without the metric counts as NaN). Set num_samples to a multiple of repeat: a
/// group left incomplete is never reported, as in Ray. Intermediate results are not passed on (Ray's Repeater does not either).
/// The group's outcome is Completed when any trial completed, else Pruned when any was pruned, else Errored (Ray passes
/// the last trial's error flag); its result's training_iteration is the largest of the group's.
/// </summary>
public sealed class Repeater : ISearcher
{
    /// <summary>The config key holding the repeat index (Ray's <c>TRIAL_INDEX</c>).</summary>
    public const string TrialIndexKey = "__trial_index__";

    private readonly ISearcher _searcher;
    private readonly List<Group> _groups = new();
    private readonly Dictionary<string, Group> _byTrial = new(StringComparer.Ordinal);
    private Group? _current;

    public Repeater(ISearcher searcher, int repeat = 1, bool setIndex = true)
    {
        ArgumentNullException.ThrowIfNull(searcher);
        if (repeat < 1) throw new ArgumentOutOfRangeException(nameof(repeat), $"Repeater.repeat must be at least 1, got {repeat}");
        _searcher = searcher;
        Repeat = repeat;
        SetIndex = setIndex;
    }

    public ISearcher Searcher => _searcher;

    public int Repeat { get; }

    public bool SetIndex { get; }

    public string? Metric => _searcher.Metric;

    public MetricMode? Mode => _searcher.Mode;

    public bool SetSearchProperties(string? metric, MetricMode? mode, SearchSpace space) => _searcher.SetSearchProperties(metric, mode, space);

    public Suggestion Suggest(string trialId)
    {
        int index;
        if (_current is null || _current.Full)
        {
            var suggestion = _searcher.Suggest(trialId);
            if (suggestion.Kind != SuggestionKind.Config) return suggestion;
            _current = new Group(trialId, suggestion.Config!, Repeat);
            _groups.Add(_current);
            index = 0;
        }
        else
        {
            index = _current.Members.Count;
            _current.Members.Add(new Member(trialId));
        }
        _byTrial[trialId] = _current;
        var config = SetIndex ? _current.Config.With(TrialIndexKey, (long)index) : _current.Config;
        return Suggestion.Of(config);
    }

    public void OnTrialResult(string trialId, TrialResult result) { }

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome)
    {
        if (!_byTrial.TryGetValue(trialId, out var group)) return;
        var member = group.Members.First(m => m.TrialId == trialId);
        member.Reported = true;
        member.Score = result is not null && Metric is not null && result.TryGetDouble(Metric, out var v) ? v : double.NaN;
        member.Outcome = outcome;
        member.Iteration = result?.TrainingIteration ?? 0;
        if (!group.Full || group.Members.Any(m => !m.Reported)) return;
        var scores = group.Members.Select(m => m.Score).Where(s => !double.IsNaN(s)).ToList();
        double mean = scores.Count == 0 ? double.NaN : scores.Average();
        var groupOutcome = group.Members.Any(m => m.Outcome == TrialOutcome.Completed) ? TrialOutcome.Completed
            : group.Members.Any(m => m.Outcome == TrialOutcome.Pruned) ? TrialOutcome.Pruned : TrialOutcome.Errored;
        var averaged = new TrialResult
        {
            Metrics = Metric is null ? Array.Empty<KeyValuePair<string, object>>() : new[] { new KeyValuePair<string, object>(Metric, mean) },
            TrainingIteration = group.Members.Max(m => m.Iteration),
            TrialId = group.Primary,
            Done = true,
        };
        _searcher.OnTrialComplete(group.Primary, averaged, groupOutcome);
    }

    public JsonNode SaveState() => new JsonObject
    {
        ["groups"] = new JsonArray(_groups.Select(g => (JsonNode?)new JsonObject
        {
            ["config"] = g.Config.ToJsonObject(),
            ["members"] = new JsonArray(g.Members.Select(m => (JsonNode?)new JsonObject
            {
                ["trial_id"] = m.TrialId,
                ["reported"] = m.Reported,
                ["score"] = double.IsFinite(m.Score) ? m.Score : null,
                ["outcome"] = m.Outcome.ToString(),
                ["iteration"] = m.Iteration,
            }).ToArray()),
        }).ToArray()),
        ["current"] = _current is null ? -1 : _groups.IndexOf(_current),
        ["searcher"] = _searcher.SaveState(),
    };

    public void RestoreState(JsonNode state)
    {
        _groups.Clear();
        _byTrial.Clear();
        _current = null;
        if (state["groups"] is JsonArray groups)
            foreach (var g in groups)
            {
                var members = ((JsonArray)g!["members"]!).Select(m => new Member(m!["trial_id"]!.GetValue<string>())
                {
                    Reported = m["reported"]?.GetValue<bool>() ?? false,
                    Score = m["score"] is JsonValue s ? s.GetValue<double>() : double.NaN,
                    Outcome = Enum.Parse<TrialOutcome>(m["outcome"]?.GetValue<string>() ?? nameof(TrialOutcome.Completed)),
                    Iteration = m["iteration"]?.GetValue<long>() ?? 0,
                }).ToList();
                var group = new Group(members[0].TrialId, TrialConfig.FromJsonNode((JsonObject)g["config"]!), Repeat);
                group.Members.Clear();
                group.Members.AddRange(members);
                _groups.Add(group);
                foreach (var m in members) _byTrial[m.TrialId] = group;
            }
        int current = state["current"]?.GetValue<int>() ?? -1;
        _current = current >= 0 && current < _groups.Count ? _groups[current] : null;
        if (state["searcher"] is { } inner) _searcher.RestoreState(inner);
    }

    private sealed class Group
    {
        public Group(string primary, TrialConfig config, int size)
        {
            Primary = primary;
            Config = config;
            Size = size;
            Members.Add(new Member(primary));
        }

        public string Primary { get; }

        public TrialConfig Config { get; }

        public int Size { get; }

        public List<Member> Members { get; } = new();

        public bool Full => Members.Count >= Size;
    }

    private sealed class Member(string trialId)
    {
        public string TrialId { get; } = trialId;

        public bool Reported { get; set; }

        public double Score { get; set; } = double.NaN;

        public TrialOutcome Outcome { get; set; }

        public long Iteration { get; set; }
    }
}
