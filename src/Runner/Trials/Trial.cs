using System.Collections.Immutable;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner;

/// <summary>A trial's lifecycle state (Ray's Trial.status values).</summary>
public enum TrialStatus
{
    Pending,
    Running,
    Paused,
    Terminated,
    Error,
}

/// <summary>When and how a trial is checkpointed, and how many checkpoints are kept.</summary>
public sealed record CheckpointConfig
{
    /// <summary>Save every N iterations; 0 turns periodic saving off.</summary>
    public int Frequency { get; init; }

    /// <summary>Save when the trial finishes.</summary>
    public bool AtEnd { get; init; }

    /// <summary>How many saved checkpoints to keep (best by <see cref="ScoreAttribute"/>); null keeps all (Ray's num_to_keep; spec <c>num_to_keep</c>).</summary>
    public int? NumToKeep { get; init; }

    /// <summary>Result key ranking checkpoints for retention; prefix "min-" to prefer small values.</summary>
    public string ScoreAttribute { get; init; } = TrialResult.TrainingIterationKey;

    /// <summary>Where periodic and final checkpoints go. Pauses, PBT and failure recovery always use memory checkpoints.</summary>
    public CheckpointStorage Storage { get; init; } = CheckpointStorage.Persistent;

    public static CheckpointConfig None { get; } = new();

    /// <summary>Throws naming the field when a value is out of range.</summary>
    public CheckpointConfig Validate()
    {
        if (Frequency < 0) throw new ArgumentOutOfRangeException(nameof(Frequency), $"CheckpointConfig.Frequency must be 0 or more, got {Frequency}");
        if (NumToKeep is < 1) throw new ArgumentOutOfRangeException(nameof(NumToKeep), $"CheckpointConfig.NumToKeep must be at least 1, got {NumToKeep}");
        if (string.IsNullOrWhiteSpace(ScoreAttribute)) throw new ArgumentException("CheckpointConfig.ScoreAttribute must not be empty", nameof(ScoreAttribute));
        return this;
    }
}

/// <summary>Min, max, last and running average of each numeric metric a trial reported (Ray's metric_analysis).</summary>
public sealed record MetricSummary(double Min, double Max, double Last, double Average, long Count);

/// <summary>
/// One configuration being trained: its id, config, resources, status, stopping criteria, checkpoint settings and
/// checkpoints, failure count, last result and directory. Its status is changed by the controller and executor only.
/// </summary>
public sealed class Trial
{
    private readonly Dictionary<string, MetricSummary> _metrics = new(StringComparer.Ordinal);
    private TrialConfig _config;
    private Resources _resources;

    public Trial(
        string trainableName,
        TrialConfig? config = null,
        string? trialId = null,
        Resources? resources = null,
        IReadOnlyDictionary<string, double>? stop = null,
        CheckpointConfig? checkpoint = null,
        int maxFailures = 0,
        string? restorePath = null,
        string experimentTag = "",
        IReadOnlyDictionary<string, object?>? evaluatedParams = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(trainableName);
        TrainableName = trainableName;
        _config = config ?? TrialConfig.Empty;
        Id = trialId ?? NewId();
        ExplicitResources = resources is not null;
        _resources = resources ?? new Resources(cpu: 1);
        Stop = (stop ?? new Dictionary<string, double>()).ToImmutableDictionary(StringComparer.Ordinal);
        Checkpointing = (checkpoint ?? CheckpointConfig.None).Validate();
        MaxFailures = maxFailures;
        RestorePath = restorePath;
        ExperimentTag = experimentTag;
        EvaluatedParams = (evaluatedParams ?? new Dictionary<string, object?>()).ToImmutableDictionary(StringComparer.Ordinal);
        Checkpoints = new CheckpointManager(Checkpointing.NumToKeep, Checkpointing.ScoreAttribute);
        if (restorePath is not null)
        {
            var external = PersistentCheckpoint.Open(restorePath);
            Checkpoints.ExternalDirectories.Add(external.Directory);
            Checkpoints.OnCheckpoint(external);
        }
    }

    public string Id { get; }

    public string TrainableName { get; }

    public TrialConfig Config => _config;

    /// <summary>The hyperparameters the searcher chose (for display), a subset of <see cref="Config"/>.</summary>
    public ImmutableDictionary<string, object?> EvaluatedParams { get; internal set; }

    public string ExperimentTag { get; internal set; }

    /// <summary>
    /// Where the trial last trained fused: its array and lane as <c>a3.5</c> (array a3, lane 5); null when it trained
    /// alone (or has not started). Set by the fused executor at each start.
    /// </summary>
    public string? Lane { get; set; }

    /// <summary>
    /// Where the trial last ran: the <see cref="DeviceSlot.Placement"/> of the slot its executor granted it (<c>GPU0</c>,
    /// <c>CPU</c>; a fused array's slot for a lane). Null before it starts, and in experiments recorded before slots were.
    /// </summary>
    public string? Slot { get; set; }

    public Resources Resources => _resources;

    /// <summary>True when the user set resources (so a trainable's own default request conflicts).</summary>
    public bool ExplicitResources { get; private set; }

    /// <summary>Stopping criteria: stop when result[key] &gt;= value.</summary>
    public ImmutableDictionary<string, double> Stop { get; }

    public CheckpointConfig Checkpointing { get; }

    /// <summary>How often the trial may fail and be recovered; negative means without limit.</summary>
    public int MaxFailures { get; }

    public int NumFailures { get; internal set; }

    public string? RestorePath { get; }

    public TrialStatus Status { get; internal set; } = TrialStatus.Pending;

    public TrialResult? LastResult { get; internal set; }

    /// <summary>
    /// For a TERMINATED trial: the scheduler or stopper (type name, as in the store's decisions) that stopped it before its
    /// own stopping criteria, or "fail_fast"; null when it completed by its criteria or reported done.
    /// </summary>
    public string? StoppedBy { get; internal set; }

    public string? LogDirectory { get; internal set; }

    public string? ErrorMessage { get; internal set; }

    public string? ErrorFile { get; internal set; }

    public DateTimeOffset? StartTime { get; internal set; }

    public CheckpointManager Checkpoints { get; internal set; }

    /// <summary>The newest checkpoint, memory or persistent (Ray's trial.checkpoint).</summary>
    public Checkpoint? Checkpoint => Checkpoints.Newest;

    public bool HasCheckpoint => Checkpoint is not null;

    /// <summary>A persistent save was dispatched and not yet processed.</summary>
    public bool IsSaving { get; internal set; }

    /// <summary>A restore from a persistent checkpoint was dispatched and not yet processed.</summary>
    public bool IsRestoring { get; internal set; }

    /// <summary>Order in which the trial was added; keeps listings stable across resumes.</summary>
    public long Sequence { get; internal set; }

    public IReadOnlyDictionary<string, MetricSummary> MetricAnalysis => _metrics;

    /// <summary>Changes the resource request; refused while the trial runs (Ray's update_resources).</summary>
    public void UpdateResources(Resources resources)
    {
        if (Status == TrialStatus.Running)
            throw new InvalidOperationException($"Cannot update resources while trial {Id} is running.");
        _resources = resources;
        ExplicitResources = true;
    }

    /// <summary>Changes the config; refused while the trial runs. Used by resumes and PBT.</summary>
    public void UpdateConfig(TrialConfig config)
    {
        if (Status == TrialStatus.Running)
            throw new InvalidOperationException($"Cannot update the config while trial {Id} is running.");
        _config = config;
    }

    internal void SetConfigFromController(TrialConfig config) => _config = config;

    internal void SetResourcesFromController(Resources resources) => _resources = resources;

    /// <summary>True when <paramref name="result"/> ends the trial: it says done, or a stopping criterion is reached.</summary>
    public bool ShouldStop(TrialResult result) => StopCriterion(result) is not null;

    /// <summary>What ends the trial after <paramref name="result"/> ("done", "training_iteration >= 15"), or null when nothing does.</summary>
    public string? StopCriterion(TrialResult result)
    {
        if (result.Done) return "done";
        foreach (var (key, threshold) in Stop)
        {
            if (!result.TryGetDouble(key, out var value))
                throw new KeyNotFoundException($"Stopping criterion '{key}' not provided in the result of trial {Id}. Keys are: {string.Join(", ", result.Keys)}");
            if (value >= threshold) return $"{key} >= {threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        }
        return null;
    }

    /// <summary>Periodic or final checkpoint due after the last result (Ray's should_checkpoint).</summary>
    public bool ShouldCheckpoint()
    {
        var result = LastResult;
        if (result is null) return false;
        if (result.Done && Checkpointing.AtEnd) return true;
        return Checkpointing.Frequency > 0 && result.TrainingIteration % Checkpointing.Frequency == 0;
    }

    public bool ShouldRecover() => MaxFailures < 0 || NumFailures < MaxFailures;

    internal void RecordResult(TrialResult result)
    {
        LastResult = result;
        foreach (var (key, value) in result.Metrics)
        {
            double v;
            if (value is double d) v = d;
            else if (value is long l) v = l;
            else continue;
            if (double.IsNaN(v)) continue;
            _metrics[key] = _metrics.TryGetValue(key, out var s)
                ? new MetricSummary(Math.Min(s.Min, v), Math.Max(s.Max, v), v, s.Average + (v - s.Average) / (s.Count + 1), s.Count + 1)
                : new MetricSummary(v, v, v, v, 1);
        }
    }

    internal void RestoreMetricAnalysis(IEnumerable<KeyValuePair<string, MetricSummary>> metrics)
    {
        foreach (var (k, v) in metrics) _metrics[k] = v;
    }

    /// <summary>Short, file-system safe name: trainable and id, through <see cref="PathNames.Component"/> (an id may hold "/" or "..").</summary>
    public string DirectoryName => PathNames.Component($"{TrainableName}_{Id}");

    public override string ToString() => $"{TrainableName}_{Id}";

    private static string NewId() => Guid.NewGuid().ToString("N")[..10];
}
