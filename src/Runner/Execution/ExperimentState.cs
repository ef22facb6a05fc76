using System.Globalization;
using System.Text.Json.Nodes;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The experiment-wide state saved beside the trials so a killed run resumes (Ray's experiment_state.py): the search
/// algorithm's state, whether it has finished, and the last trial sequence handed out. Trials have their own records.
/// </summary>
internal sealed record ExperimentState(
    string Name,
    string? Metric,
    MetricMode? Mode,
    JsonNode? SearchState,
    bool SearchFinished,
    long TrialSequence,
    DateTimeOffset Updated)
{
    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["metric"] = Metric,
        ["mode"] = Mode?.ToString().ToLowerInvariant(),
        ["search_state"] = SearchState,
        ["search_finished"] = SearchFinished,
        ["trial_sequence"] = TrialSequence,
        ["updated"] = Updated.ToString("O", CultureInfo.InvariantCulture),
    };

    /// <summary>Continues <paramref name="search"/> from a saved state and returns the trial sequence it had reached.</summary>
    public static long Restore(JsonObject state, ISearchAlgorithm search)
    {
        if (state["search_state"] is { } searchState) search.RestoreState(searchState);
        if (state["search_finished"]?.GetValue<bool>() == true) search.SetFinished();
        return state["trial_sequence"]?.GetValue<long>() ?? 0;
    }
}

/// <summary>
/// Commits the store with the experiment state: at once when forced (Ray's checkpoint(force=True)), otherwise when writes
/// are queued and <see cref="ControllerOptions.StoreFlushInterval"/> has passed on the controller's clock since the last commit.
/// </summary>
internal sealed class ExperimentStateWriter(IExperimentStore store, TimeProvider clock, TimeSpan interval, Func<ExperimentState> current)
{
    private long _lastWrite = clock.GetTimestamp();

    public void Write(bool force)
    {
        store.SaveExperimentState(current().ToJson());
        if (force) store.Flush();
        else store.BeginFlush();
        _lastWrite = clock.GetTimestamp();
    }

    public void WriteIfDue()
    {
        if (store.PendingWrites == 0 || clock.GetElapsedTime(_lastWrite) < interval) return;
        Write(force: false);
    }
}
