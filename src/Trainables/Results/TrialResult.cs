using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json.Nodes;

namespace TorchTrials.Trainables;

/// <summary>
/// One reported result: the trainable's metrics plus the fields Ray Tune fills in for every result
/// (training_iteration, time_this_iter_s, time_total_s, time_since_restore, iterations_since_restore,
/// timesteps_since_restore, timesteps_total, done, trial_id, experiment_tag, timestamp, date, pid, hostname).
/// </summary>
public sealed record TrialResult
{
    public const string TrainingIterationKey = "training_iteration";
    public const string TimeThisIterKey = "time_this_iter_s";
    public const string TimeTotalKey = "time_total_s";
    public const string TimeSinceRestoreKey = "time_since_restore";
    public const string IterationsSinceRestoreKey = "iterations_since_restore";
    public const string TimestepsSinceRestoreKey = "timesteps_since_restore";
    public const string TimestepsTotalKey = "timesteps_total";
    public const string EpisodesTotalKey = "episodes_total";
    public const string DoneKey = "done";
    public const string TrialIdKey = "trial_id";
    public const string ExperimentTagKey = "experiment_tag";
    public const string TimestampKey = "timestamp";
    public const string DateKey = "date";
    public const string PidKey = "pid";
    public const string HostnameKey = "hostname";

    /// <summary>The auto-filled keys, in the order progress.csv writes them after the metrics.</summary>
    public static readonly IReadOnlyList<string> AutoKeys = new[]
    {
        TrainingIterationKey, TimeThisIterKey, TimeTotalKey, TimeSinceRestoreKey, IterationsSinceRestoreKey,
        TimestepsSinceRestoreKey, TimestepsTotalKey, EpisodesTotalKey, DoneKey, TrialIdKey, ExperimentTagKey,
        TimestampKey, DateKey, PidKey, HostnameKey,
    };

    private static readonly FrozenSet<string> AutoKeySet = AutoKeys.ToFrozenSet();

    public static bool IsAutoKey(string key) => AutoKeySet.Contains(key);

    /// <summary>The trainable's own values (double, long, bool or string), in report order.</summary>
    public required IReadOnlyList<KeyValuePair<string, object>> Metrics { get; init; }

    public long TrainingIteration { get; init; }
    public double TimeThisIterS { get; init; }
    public double TimeTotalS { get; init; }
    public double TimeSinceRestore { get; init; }
    public long IterationsSinceRestore { get; init; }
    public long TimestepsSinceRestore { get; init; }
    public long? TimestepsTotal { get; init; }
    public long? EpisodesTotal { get; init; }
    public bool Done { get; init; }
    public string TrialId { get; init; } = "";
    public string ExperimentTag { get; init; } = "";
    public long Timestamp { get; init; }
    /// <summary>Local time of <see cref="Timestamp"/> as Ray writes it ("2026-11-25_17-23-45"); formatted when read.</summary>
    public string Date => Timestamp == 0 ? "" : FormatDate(DateTimeOffset.FromUnixTimeSeconds(Timestamp).LocalDateTime);
    public int Pid { get; init; }
    public string Hostname { get; init; } = "";

    /// <summary>The trainable asked for a checkpoint after this result.</summary>
    public bool ShouldCheckpoint { get; init; }

    /// <summary>A repeat of the previous result sent when a function trainable returns (Ray's RESULT_DUPLICATE).</summary>
    public bool IsDuplicate { get; init; }

    /// <summary>A metric or an auto-filled field by name; null when absent.</summary>
    public object? this[string key] => TryGet(key, out var value) ? value : null;

    public bool TryGet(string key, out object? value)
    {
        switch (key)
        {
            case TrainingIterationKey: value = TrainingIteration; return true;
            case TimeThisIterKey: value = TimeThisIterS; return true;
            case TimeTotalKey: value = TimeTotalS; return true;
            case TimeSinceRestoreKey: value = TimeSinceRestore; return true;
            case IterationsSinceRestoreKey: value = IterationsSinceRestore; return true;
            case TimestepsSinceRestoreKey: value = TimestepsSinceRestore; return true;
            case TimestepsTotalKey: value = TimestepsTotal; return TimestepsTotal.HasValue;
            case EpisodesTotalKey: value = EpisodesTotal; return EpisodesTotal.HasValue;
            case DoneKey: value = Done; return true;
            case TrialIdKey: value = TrialId; return true;
            case ExperimentTagKey: value = ExperimentTag; return true;
            case TimestampKey: value = Timestamp; return true;
            case DateKey: value = Date; return true;
            case PidKey: value = (long)Pid; return true;
            case HostnameKey: value = Hostname; return true;
        }
        foreach (var kv in Metrics)
        {
            if (kv.Key != key) continue;
            value = kv.Value;
            return true;
        }
        value = null;
        return false;
    }

    /// <summary>A numeric metric or field; false when absent or not a number.</summary>
    public bool TryGetDouble(string key, out double value)
    {
        if (TryGet(key, out var v))
        {
            switch (v)
            {
                case double d: value = d; return true;
                case long l: value = l; return true;
                case bool b: value = b ? 1 : 0; return true;
            }
        }
        value = double.NaN;
        return false;
    }

    /// <summary>The numeric value of <paramref name="key"/>, or throws naming the key and what the result has.</summary>
    public double GetDouble(string key) =>
        TryGetDouble(key, out var v) ? v : throw new KeyNotFoundException(
            $"result has no numeric '{key}' (it has: {string.Join(", ", Metrics.Select(m => m.Key).Concat(AutoKeys.Take(6)))})");

    /// <summary>All keys: metrics first, then the auto-filled fields present.</summary>
    public IEnumerable<string> Keys => Metrics.Select(m => m.Key).Concat(AutoKeys.Where(k => TryGet(k, out _)));

    public JsonObject ToJsonObject()
    {
        var obj = new JsonObject();
        foreach (var (key, value) in Metrics) obj[key] = TrialConfig.ToNode(value);
        foreach (var key in AutoKeys)
            if (TryGet(key, out var value)) obj[key] = TrialConfig.ToNode(value);
        return obj;
    }

    public override string ToString() =>
        $"{TrialId} iter {TrainingIteration}: " + string.Join(", ", Metrics.Select(m => $"{m.Key}={TrialConfig.Format(m.Value)}"));

    internal static string FormatDate(DateTime now) => now.ToString("yyyy-MM-dd_HH-mm-ss", CultureInfo.InvariantCulture);
}
