using System.Text.Json;
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

    /// <summary>
    /// Retention let <paramref name="checkpoint"/> go: it leaves the index and its files are deleted once the commit that
    /// carries this (and so the checkpoint replacing it) is durable, never before (DESIGN.md, durability rules).
    /// </summary>
    void CheckpointRetired(Trial trial, PersistentCheckpoint checkpoint);

    void DecisionMade(Trial trial, long iteration, string decision, string source);

    /// <summary>
    /// PBT or PB2 exploited: <paramref name="trial"/> took <paramref name="donor"/>'s state at <paramref name="iteration"/> and
    /// now holds its new config (it had <paramref name="oldConfig"/>). Queued like <see cref="DecisionMade"/>; a store that
    /// keeps no such record ignores it.
    /// </summary>
    void ExploitMade(Trial trial, Trial donor, long iteration, TrialConfig oldConfig) { }

    void SaveExperimentState(JsonObject state);

    /// <summary>Commits everything queued, in one transaction, and returns once it is durable.</summary>
    void Flush();

    /// <summary>Starts committing everything queued without waiting (the controller's periodic commit).</summary>
    void BeginFlush() => Flush();

    /// <summary>Writes queued since the last commit.</summary>
    int PendingWrites { get; }

    /// <summary>What the store holds, or null for an empty store.</summary>
    StoredExperiment? Load();

    /// <summary>The results stored for one trial, oldest first (its one history).</summary>
    IReadOnlyList<TrialResult> ResultsOf(string trialId);
}

/// <summary>A persistent checkpoint as indexed by the store.</summary>
public sealed record StoredCheckpoint(string Path, long Iteration);

/// <summary>A trial as the store recorded it.</summary>
public sealed record StoredTrial(JsonObject State, IReadOnlyList<StoredCheckpoint> Checkpoints)
{
    public string Id => State["id"]!.GetValue<string>();

    public TrialStatus Status => Enum.Parse<TrialStatus>(State["status"]!.GetValue<string>());
}

/// <summary>A row of the store's <c>decisions</c>; <paramref name="At"/> is unix seconds.</summary>
internal sealed record StoredDecision(string TrialId, long Iteration, string Decision, string Source, double At);

/// <summary>A row of the store's <c>status_changes</c>; <paramref name="At"/> is unix seconds.</summary>
internal sealed record StoredStatusChange(string TrialId, string? Previous, string Status, string? Reason, double At);

/// <summary>A row of the store's <c>exploits</c>: configs as JSON objects, <paramref name="At"/> in unix seconds.</summary>
internal sealed record StoredExploit(string TrialId, string DonorId, long Iteration, string OldConfig, string NewConfig, double At);

/// <summary>The experiment as loaded for a resume.</summary>
public sealed record StoredExperiment(JsonObject State, IReadOnlyList<StoredTrial> Trials, long ResultCount);

/// <summary>Turns trials into JSON state and back.</summary>
public static class TrialStateCodec
{
    /// <summary>The trial's state as JSON text, written in one pass (this runs for every trial change a commit carries).</summary>
    public static string EncodeJson(Trial trial)
    {
        var buffer = _buffer ??= new System.Buffers.ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        var w = _writer ??= new Utf8JsonWriter(buffer);
        w.Reset(buffer);
        {
            w.WriteStartObject();
            w.WriteString("id", trial.Id);
            w.WriteNumber("sequence", trial.Sequence);
            w.WriteString("trainable", trial.TrainableName);
            w.WritePropertyName("config");
            trial.Config.WriteTo(w);
            w.WriteStartObject("evaluated_params");
            foreach (var (key, value) in trial.EvaluatedParams)
            {
                w.WritePropertyName(key);
                TrialConfig.WriteValue(w, value);
            }
            w.WriteEndObject();
            w.WriteString("experiment_tag", trial.ExperimentTag);
            if (trial.Lane is { } lane) w.WriteString("lane", lane);
            if (trial.Slot is { } slot) w.WriteString("slot", slot);
            w.WritePropertyName("resources");
            trial.Resources.WriteTo(w);
            w.WriteBoolean("explicit_resources", trial.ExplicitResources);
            w.WriteStartObject("stop");
            foreach (var (key, value) in trial.Stop) w.WriteNumber(key, value);
            w.WriteEndObject();
            w.WriteStartObject("checkpoint");
            w.WriteNumber("frequency", trial.Checkpointing.Frequency);
            w.WriteBoolean("at_end", trial.Checkpointing.AtEnd);
            if (trial.Checkpointing.NumToKeep is { } keep) w.WriteNumber("keep", keep);
            else w.WriteNull("keep");
            w.WriteString("score_attribute", trial.Checkpointing.ScoreAttribute);
            w.WriteString("storage", trial.Checkpointing.Storage.ToString());
            w.WriteEndObject();
            w.WriteNumber("max_failures", trial.MaxFailures);
            w.WriteNumber("num_failures", trial.NumFailures);
            w.WriteString("restore_path", trial.RestorePath);
            w.WriteString("status", trial.Status.ToString());
            if (trial.StoppedBy is { } stoppedBy) w.WriteString("stopped_by", stoppedBy);
            if (trial.LastResult is { } last)
            {
                w.WritePropertyName("last_result");
                ResultJson.Write(w, last);
            }
            w.WriteString("logdir", trial.LogDirectory);
            w.WriteString("error_message", trial.ErrorMessage);
            w.WriteString("error_file", trial.ErrorFile);
            if (trial.StartTime is { } start) w.WriteNumber("start_time", start.ToUnixTimeMilliseconds());
            w.WriteStartObject("metric_analysis");
            foreach (var (key, s) in trial.MetricAnalysis)
            {
                w.WriteStartObject(key);
                WriteDouble(w, "min", s.Min);
                WriteDouble(w, "max", s.Max);
                WriteDouble(w, "last", s.Last);
                WriteDouble(w, "avg", s.Average);
                w.WriteNumber("count", s.Count);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.Flush();
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [ThreadStatic]
    private static System.Buffers.ArrayBufferWriter<byte>? _buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? _writer;

    private static void WriteDouble(Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value)) w.WriteNumber(name, value);
        else w.WriteString(name, value.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
    }

    public static JsonObject Encode(Trial trial) => JsonNode.Parse(EncodeJson(trial))!.AsObject();

    /// <summary>Rebuilds a trial (see the overload), skipping damaged checkpoints silently.</summary>
    public static Trial Decode(StoredTrial stored) => Decode(stored, null);

    /// <summary>
    /// Rebuilds a trial; its status is the recorded one and its checkpoints are those whose files still exist and are
    /// complete. Each checkpoint skipped as damaged is reported through <paramref name="warn"/>, naming its folder.
    /// </summary>
    public static Trial Decode(StoredTrial stored, Action<string>? warn)
    {
        var s = stored.State;
        var ck = s["checkpoint"]!.AsObject();
        var checkpointConfig = new CheckpointConfig
        {
            Frequency = ck["frequency"]?.GetValue<int>() ?? 0,
            AtEnd = ck["at_end"]?.GetValue<bool>() ?? false,
            NumToKeep = ck["keep"]?.GetValue<int?>(),
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
        trial.StoppedBy = s["stopped_by"]?.GetValue<string>();
        trial.Lane = s["lane"]?.GetValue<string>();
        trial.Slot = s["slot"]?.GetValue<string>();
        trial.LogDirectory = s["logdir"]?.GetValue<string>();
        trial.ErrorMessage = s["error_message"]?.GetValue<string>();
        trial.ErrorFile = s["error_file"]?.GetValue<string>();
        if (s["start_time"]?.GetValue<long?>() is { } ms) trial.StartTime = DateTimeOffset.FromUnixTimeMilliseconds(ms);
        if (s["last_result"] is JsonObject lr) trial.LastResult = ResultJson.Read(lr);
        if (s["metric_analysis"] is JsonObject ma)
            trial.RestoreMetricAnalysis(ma.Select(kv => new KeyValuePair<string, MetricSummary>(kv.Key, new MetricSummary(
                kv.Value!["min"]!.GetValue<double>(), kv.Value["max"]!.GetValue<double>(), kv.Value["last"]!.GetValue<double>(),
                kv.Value["avg"]!.GetValue<double>(), kv.Value["count"]!.GetValue<long>()))));
        var existing = stored.Checkpoints
            .Where(c => System.IO.Directory.Exists(c.Path))
            .Select(c =>
            {
                try { return PersistentCheckpoint.Open(c.Path); }
                catch (Exception e) when (e is IOException or InvalidDataException or JsonException or InvalidOperationException or FormatException)
                {
                    warn?.Invoke($"trial {stored.Id}: skipping damaged checkpoint {c.Path} (iteration {c.Iteration}): {e.Message}");
                    return null;
                }
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
    public void CheckpointRetired(Trial trial, PersistentCheckpoint checkpoint) => checkpoint.Delete();
    public void DecisionMade(Trial trial, long iteration, string decision, string source) { }
    public void SaveExperimentState(JsonObject state) { }
    public void Flush() { }
    public StoredExperiment? Load() => null;
    public IReadOnlyList<TrialResult> ResultsOf(string trialId) => Array.Empty<TrialResult>();
    public void Dispose() { }
}
