using System.Text.Json.Nodes;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Trainables;

/// <summary>
/// The counters Ray's Trainable base class keeps around the user's code for one trial (iterations, time, timesteps,
/// episodes, their since-restore parts), the result fields they make and how they travel inside checkpoints. A
/// <see cref="TrainableHost"/> keeps one; a <see cref="FusedArrayHost"/> one per lane, so a lane's results and
/// checkpoints carry exactly what the trial alone would.
/// </summary>
internal sealed class HostCounters
{
    private const string CountersKey = "host_counters";
    private static readonly string Hostname = Environment.MachineName;
    private static readonly int Pid = Environment.ProcessId;

    private double _timeTotal;
    private long? _timestepsTotal;
    private long? _episodesTotal;
    private double _timeSinceRestore;
    private long _iterationsSinceRestore;
    private long _timestepsSinceRestore;

    public long Iteration { get; private set; }

    /// <summary>The newest materialised result (what an end-of-function step repeats).</summary>
    public TrialResult? Last { get; set; }

    /// <summary>Counts one iteration that took <paramref name="seconds"/> and returns its result fields (metrics not read yet).</summary>
    public TrialResult Advance(Metrics metrics, double seconds, TrainableContext context)
    {
        Iteration++;
        _iterationsSinceRestore++;
        _timeTotal += seconds;
        _timeSinceRestore += seconds;
        long? timesteps = null, episodes = null;
        foreach (var (key, value) in metrics.Entries)
        {
            if (key == Metrics.TimestepsThisIterKey) timesteps = AsLong(value);
            else if (key == Metrics.EpisodesThisIterKey) episodes = AsLong(value);
        }
        if (timesteps is { } ts)
        {
            _timestepsTotal = (_timestepsTotal ?? 0) + ts;
            _timestepsSinceRestore += ts;
        }
        if (episodes is { } ep) _episodesTotal = (_episodesTotal ?? 0) + ep;

        return new TrialResult
        {
            Metrics = Array.Empty<KeyValuePair<string, object>>(),
            TrainingIteration = Iteration,
            TimeThisIterS = seconds,
            TimeTotalS = _timeTotal,
            TimeSinceRestore = _timeSinceRestore,
            IterationsSinceRestore = _iterationsSinceRestore,
            TimestepsSinceRestore = _timestepsSinceRestore,
            TimestepsTotal = _timestepsTotal,
            EpisodesTotal = _episodesTotal,
            Done = metrics.Done,
            ShouldCheckpoint = metrics.ShouldCheckpoint,
            TrialId = context.TrialId,
            ExperimentTag = context.ExperimentTag,
            Timestamp = context.TimeProvider.GetUtcNow().ToUnixTimeSeconds(),
            Pid = Pid,
            Hostname = Hostname,
        };
    }

    /// <summary>Writes the counters into a saved state (the state's own iteration wins when it names one).</summary>
    public void WriteTo(TrainableState state)
    {
        long iteration = state.Metadata[TrainableHost.StateIterationKey] is JsonValue v && v.TryGetValue<long>(out var it) ? it : Iteration;
        state.Metadata[CountersKey] = new JsonObject
        {
            ["iteration"] = iteration,
            ["time_total"] = _timeTotal,
            ["timesteps_total"] = _timestepsTotal,
            ["episodes_total"] = _episodesTotal,
        };
    }

    /// <summary>Takes the counters a restored state carries; the since-restore ones start over.</summary>
    public void ReadFrom(TrainableState state)
    {
        if (state.Metadata[CountersKey] is JsonObject counters)
        {
            Iteration = counters["iteration"]?.GetValue<long>() ?? 0;
            _timeTotal = counters["time_total"]?.GetValue<double>() ?? 0;
            _timestepsTotal = counters["timesteps_total"]?.GetValue<long>();
            _episodesTotal = counters["episodes_total"]?.GetValue<long>();
        }
        _timeSinceRestore = 0;
        _iterationsSinceRestore = 0;
        _timestepsSinceRestore = 0;
    }

    /// <summary>Takes another trial's counters as a restore of its checkpoint would (a copy between lanes).</summary>
    public void CopyFrom(HostCounters other)
    {
        Iteration = other.Iteration;
        _timeTotal = other._timeTotal;
        _timestepsTotal = other._timestepsTotal;
        _episodesTotal = other._episodesTotal;
        _timeSinceRestore = 0;
        _iterationsSinceRestore = 0;
        _timestepsSinceRestore = 0;
    }

    // Called after the step's dispose scope: the converted copy is held by a local until the read returns.
    private static long ReadLong(Tensor t)
    {
        using var value = t.to(ScalarType.Float64);
        return (long)value.item<double>();
    }

    private static long? AsLong(object value) => value switch
    {
        long l => l,
        double d => (long)d,
        Tensor t => ReadLong(t),
        _ => null,
    };
}
