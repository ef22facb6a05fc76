using System.Text.Json.Nodes;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Store;

/// <summary>
/// Durable record of an experiment: trials, their state, every result, status changes, scheduler decisions and the
/// checkpoint index. Writes are queued and committed together by <see cref="Flush"/>, in one transaction, so the store
/// always holds a consistent cut of the run: what a commit acknowledged survives a crash.
/// </summary>
public interface IExperimentStore : IDisposable
{
    /// <summary>The experiment's directory (per-trial folders live under it).</summary>
    string Directory { get; }

    void TrialAdded(Trial trial);

    /// <summary>The trial's state changed (status, failures, config, resources, error, last result).</summary>
    void TrialChanged(Trial trial, TrialStatus? previousStatus = null, string? reason = null);

    void ResultReported(Trial trial, TrialResult result);

    /// <summary>The trial's results after <paramref name="keepThroughIteration"/> are discarded (it restored an older checkpoint).</summary>
    void ResultsRolledBack(Trial trial, long keepThroughIteration);

    void CheckpointSaved(Trial trial, PersistentCheckpoint checkpoint);

    void DecisionMade(Trial trial, long iteration, string decision, string source);

    void SaveExperimentState(JsonObject state);

    /// <summary>Commits everything queued, in one transaction.</summary>
    void Flush();

    /// <summary>Writes queued since the last commit.</summary>
    int PendingWrites { get; }

    /// <summary>What the store holds, or null for an empty store.</summary>
    StoredExperiment? Load();
}

/// <summary>A persistent checkpoint as indexed by the store.</summary>
public sealed record StoredCheckpoint(string Path, long Iteration);

/// <summary>A trial as the store recorded it.</summary>
public sealed record StoredTrial(JsonObject State, IReadOnlyList<StoredCheckpoint> Checkpoints)
{
    public string Id => State["id"]!.GetValue<string>();

    public TrialStatus Status => Enum.Parse<TrialStatus>(State["status"]!.GetValue<string>());
}

/// <summary>The experiment as loaded for a resume.</summary>
public sealed record StoredExperiment(JsonObject State, IReadOnlyList<StoredTrial> Trials, long ResultCount);

/// <summary>Turns trials into JSON state and back.</summary>
public static class TrialStateCodec
{
    public static JsonObject Encode(Trial trial)
    {
        var metrics = new JsonObject();
        foreach (var (key, s) in trial.MetricAnalysis)
            metrics[key] = new JsonObject { ["min"] = s.Min, ["max"] = s.Max, ["last"] = s.Last, ["avg"] = s.Average, ["count"] = s.Count };
        var evaluated = new JsonObject();
        foreach (var (key, value) in trial.EvaluatedParams) evaluated[key] = TrialConfig.ToNode(value);
        return new JsonObject
        {
            ["id"] = trial.Id,
            ["sequence"] = trial.Sequence,
            ["trainable"] = trial.TrainableName,
            ["config"] = trial.Config.ToJsonObject(),
            ["evaluated_params"] = evaluated,
            ["experiment_tag"] = trial.ExperimentTag,
            ["resources"] = JsonNode.Parse(trial.Resources.ToJson()),
            ["explicit_resources"] = trial.ExplicitResources,
            ["stop"] = new JsonObject(trial.Stop.Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value))),
            ["checkpoint"] = new JsonObject
            {
                ["frequency"] = trial.Checkpointing.Frequency,
                ["at_end"] = trial.Checkpointing.AtEnd,
                ["keep"] = trial.Checkpointing.KeepNum,
                ["score_attribute"] = trial.Checkpointing.ScoreAttribute,
                ["storage"] = trial.Checkpointing.Storage.ToString(),
            },
            ["max_failures"] = trial.MaxFailures,
            ["num_failures"] = trial.NumFailures,
            ["restore_path"] = trial.RestorePath,
            ["status"] = trial.Status.ToString(),
            ["last_result"] = trial.LastResult?.ToJsonObject(),
            ["logdir"] = trial.LogDirectory,
            ["error_message"] = trial.ErrorMessage,
            ["error_file"] = trial.ErrorFile,
            ["start_time"] = trial.StartTime?.ToUnixTimeMilliseconds(),
            ["metric_analysis"] = metrics,
        };
    }

    /// <summary>Rebuilds a trial; its status is the recorded one and its checkpoints are those whose files still exist.</summary>
    public static Trial Decode(StoredTrial stored)
    {
        var s = stored.State;
        var ck = s["checkpoint"]!.AsObject();
        var checkpointConfig = new CheckpointConfig
        {
            Frequency = ck["frequency"]?.GetValue<int>() ?? 0,
            AtEnd = ck["at_end"]?.GetValue<bool>() ?? false,
            KeepNum = ck["keep"]?.GetValue<int?>(),
            ScoreAttribute = ck["score_attribute"]?.GetValue<string>() ?? TrialResult.TrainingIterationKey,
            Storage = Enum.Parse<CheckpointStorage>(ck["storage"]?.GetValue<string>() ?? nameof(CheckpointStorage.Persistent)),
        };
        bool explicitResources = s["explicit_resources"]?.GetValue<bool>() ?? true;
        var resources = Resources.FromJson(s["resources"]!.ToJsonString());
        string? restorePath = s["restore_path"]?.GetValue<string>();
        if (restorePath is not null && !System.IO.Directory.Exists(restorePath)) restorePath = null;
        var evaluated = s["evaluated_params"] is JsonObject ev
            ? TrialConfig.FromJsonNode(ev).ToDictionary(kv => kv.Key, kv => kv.Value)
            : new Dictionary<string, object?>();
        var trial = new Trial(
            s["trainable"]!.GetValue<string>(),
            TrialConfig.FromJsonNode(s["config"]!.AsObject()),
            s["id"]!.GetValue<string>(),
            explicitResources ? resources : null,
            s["stop"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>()),
            checkpointConfig,
            s["max_failures"]?.GetValue<int>() ?? 0,
            restorePath,
            s["experiment_tag"]?.GetValue<string>() ?? "",
            evaluated);
        if (!explicitResources) trial.SetResourcesFromController(resources);
        trial.Sequence = s["sequence"]?.GetValue<long>() ?? 0;
        trial.NumFailures = s["num_failures"]?.GetValue<int>() ?? 0;
        trial.Status = stored.Status;
        trial.LogDirectory = s["logdir"]?.GetValue<string>();
        trial.ErrorMessage = s["error_message"]?.GetValue<string>();
        trial.ErrorFile = s["error_file"]?.GetValue<string>();
        if (s["start_time"]?.GetValue<long?>() is { } ms) trial.StartTime = DateTimeOffset.FromUnixTimeMilliseconds(ms);
        if (s["last_result"] is JsonObject lr) trial.LastResult = TrialResult.FromJsonObject(lr);
        if (s["metric_analysis"] is JsonObject ma)
            trial.RestoreMetricAnalysis(ma.Select(kv => new KeyValuePair<string, MetricSummary>(kv.Key, new MetricSummary(
                kv.Value!["min"]!.GetValue<double>(), kv.Value["max"]!.GetValue<double>(), kv.Value["last"]!.GetValue<double>(),
                kv.Value["avg"]!.GetValue<double>(), kv.Value["count"]!.GetValue<long>()))));
        var existing = stored.Checkpoints
            .Where(c => System.IO.Directory.Exists(c.Path))
            .Select(c =>
            {
                try { return PersistentCheckpoint.Open(c.Path); }
                catch (Exception e) when (e is IOException or InvalidDataException or System.Text.Json.JsonException) { return null; }
            })
            .OfType<PersistentCheckpoint>()
            .ToList();
        trial.Checkpoints.Adopt(existing);
        return trial;
    }
}

/// <summary>Keeps nothing: for runs that want no record (benchmarks of the controller alone, quick experiments in notebooks).</summary>
public sealed class NullExperimentStore(string directory) : IExperimentStore
{
    public string Directory { get; } = directory;
    public int PendingWrites => 0;
    public void TrialAdded(Trial trial) { }
    public void TrialChanged(Trial trial, TrialStatus? previousStatus = null, string? reason = null) { }
    public void ResultReported(Trial trial, TrialResult result) { }
    public void ResultsRolledBack(Trial trial, long keepThroughIteration) { }
    public void CheckpointSaved(Trial trial, PersistentCheckpoint checkpoint) { }
    public void DecisionMade(Trial trial, long iteration, string decision, string source) { }
    public void SaveExperimentState(JsonObject state) { }
    public void Flush() { }
    public StoredExperiment? Load() => null;
    public void Dispose() { }
}
