using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>How a trial ended, as searchers need to know it (Optuna ranks pruned trials apart from complete ones).</summary>
public enum TrialOutcome
{
    /// <summary>It reached its stopping criteria or said it was done.</summary>
    Completed,

    /// <summary>A scheduler, a stopper of the whole experiment, or the user stopped it early.</summary>
    Pruned,

    /// <summary>It failed and will not be recovered.</summary>
    Errored,
}

/// <summary>
/// Where trials come from (Ray's SearchAlgorithm): the controller asks for the next trial whenever it has room,
/// and reports results and completions back. Implementations: a fixed list, the basic variant generator, and a
/// generator wrapping a model-based searcher.
/// </summary>
public interface ISearchAlgorithm
{
    /// <summary>The next trial to queue, or null when none can be produced right now.</summary>
    Trial? NextTrial();

    /// <summary>True when no further trials will ever be produced.</summary>
    bool IsFinished { get; }

    /// <summary>Stops producing trials (fail-fast, experiment stoppers).</summary>
    void SetFinished();

    /// <summary>How many trials this algorithm will produce in all, or -1 when unknown.</summary>
    int TotalSamples { get; }

    void OnTrialResult(string trialId, TrialResult result);

    void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome);

    /// <summary>State needed to continue after a resume (for example how many trials were produced); null when stateless.</summary>
    JsonNode? SaveState();

    void RestoreState(JsonNode state);

    /// <summary>
    /// True when the trials produced do not depend on the results of earlier ones (grid and random search, a fixed list):
    /// producing them early changes nothing, so an executor may ask for many pending trials at once (fused arrays group them
    /// by shape). A model-based searcher answers false: each trial it produces early is one it picks knowing less.
    /// </summary>
    bool SamplesIndependently => false;
}

/// <summary>A fixed list of trials, produced in order; also what manual <c>AddTrial</c> calls amount to.</summary>
public sealed class TrialListSearch : ISearchAlgorithm
{
    public bool SamplesIndependently => true;

    private readonly Queue<Trial> _queue;
    private readonly int _total;
    private int _produced;

    public TrialListSearch(IEnumerable<Trial>? trials = null)
    {
        _queue = new Queue<Trial>(trials ?? Array.Empty<Trial>());
        _total = _queue.Count;
    }

    public Trial? NextTrial()
    {
        if (_queue.Count == 0) return null;
        _produced++;
        return _queue.Dequeue();
    }

    public bool IsFinished => _queue.Count == 0;

    public void SetFinished() => _queue.Clear();

    public int TotalSamples => _total;

    public void OnTrialResult(string trialId, TrialResult result) { }

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome) { }

    public JsonNode? SaveState() => new JsonObject { ["produced"] = _produced };

    public void RestoreState(JsonNode state)
    {
        int produced = state["produced"]?.GetValue<int>() ?? 0;
        while (_produced < produced && _queue.Count > 0)
        {
            _queue.Dequeue();
            _produced++;
        }
    }
}
