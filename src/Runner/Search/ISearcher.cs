using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>What a searcher answers when asked for a trial's config.</summary>
public enum SuggestionKind
{
    /// <summary>A config to run.</summary>
    Config,

    /// <summary>Nothing now; ask again later (a concurrency limit, or a batch waiting for its results).</summary>
    NotNow,

    /// <summary>The searcher will suggest nothing more.</summary>
    Finished,
}

/// <summary>A searcher's answer (Ray's <c>Searcher.suggest</c> returns a dict, None, or <c>Searcher.FINISHED</c>).</summary>
public sealed class Suggestion
{
    private Suggestion(SuggestionKind kind, TrialConfig? config)
    {
        Kind = kind;
        Config = config;
    }

    public SuggestionKind Kind { get; }

    /// <summary>The suggested config when <see cref="Kind"/> is <see cref="SuggestionKind.Config"/>.</summary>
    public TrialConfig? Config { get; }

    public static Suggestion NotNow { get; } = new(SuggestionKind.NotNow, null);

    public static Suggestion Finished { get; } = new(SuggestionKind.Finished, null);

    public static Suggestion Of(TrialConfig config) => new(SuggestionKind.Config, config ?? throw new ArgumentNullException(nameof(config)));

    public override string ToString() => Kind == SuggestionKind.Config ? $"Config({Config})" : Kind.ToString();
}

/// <summary>
/// A searcher proposes configurations one trial at a time and learns from results (Ray Tune's <c>Searcher</c>,
/// <c>ray/tune/search/searcher.py</c>). <see cref="SearchGenerator"/> turns one into trials; decorators such as
/// <see cref="ConcurrencyLimiter"/> and <see cref="Repeater"/> wrap one.
/// </summary>
public interface ISearcher
{
    /// <summary>The result key the searcher optimises; null until set.</summary>
    string? Metric { get; }

    MetricMode? Mode { get; }

    /// <summary>
    /// Gives the searcher the experiment's metric, mode and space. False when it was already configured with a different
    /// metric, mode or space (then the caller must not use it), as Ray's <c>set_search_properties</c>.
    /// </summary>
    bool SetSearchProperties(string? metric, MetricMode? mode, SearchSpace space);

    /// <summary>A config for the trial <paramref name="trialId"/>, or not now, or finished. Trial ids are unique per experiment.</summary>
    Suggestion Suggest(string trialId);

    /// <summary>An intermediate result of a suggested trial.</summary>
    void OnTrialResult(string trialId, TrialResult result);

    /// <summary>The trial ended; called once per suggested trial. <paramref name="result"/> is its last result, if any.</summary>
    void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome);

    /// <summary>Everything needed to continue after a resume: observations, pending trials, random state.</summary>
    JsonNode SaveState();

    void RestoreState(JsonNode state);
}
