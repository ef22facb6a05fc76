using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Trainables;

/// <summary>What one fused step gave one lane: its result still on the device, or the error its trial fails with.</summary>
public readonly record struct LaneStep(int Lane, PendingResult? Pending, Exception? Error);

/// <summary>
/// Runs a <see cref="FusedTrainable"/> on its array's thread and does per lane what <see cref="TrainableHost"/> does for a
/// trial alone: counts each lane's iterations, times them (a lane's time_this_iter_s is the whole fused step's time: the
/// lanes shared it), accumulates timesteps and episodes, resets the since-restore counters on restore, and writes the
/// same counters into lane checkpoints, so a lane checkpoint restores in any lane or in the class trained alone.
/// Every member runs on the array's thread.
/// </summary>
public sealed class FusedArrayHost : IDisposable
{
    private readonly FusedLane[] _lanes;
    private readonly HostCounters?[] _counters;

    private FusedArrayHost(FusedTrainable array, FusedArrayContext context)
    {
        Array = array;
        Context = context;
        _lanes = Enumerable.Range(0, context.Capacity).Select(i => new FusedLane(i)).ToArray();
        _counters = new HostCounters?[context.Capacity];
    }

    public FusedTrainable Array { get; }

    public FusedArrayContext Context { get; }

    public int Capacity => _lanes.Length;

    /// <summary>Builds the array of <paramref name="entry"/> (a fusable trainable) for <paramref name="context"/>.</summary>
    public static FusedArrayHost Create(RegisteredTrainable entry, FusedArrayContext context)
    {
        var factory = entry.CreateFusedArray ?? throw new InvalidOperationException($"trainable '{entry.Name}' does not train fused");
        var array = factory(context) ?? throw new InvalidOperationException($"trainable '{entry.Name}' built no fused array");
        array.Context = context;
        return new FusedArrayHost(array, context);
    }

    /// <summary>Iterations the lane's trial has completed.</summary>
    public long IterationOf(int lane) => Counters(lane).Iteration;

    /// <summary>Sets the lane up for a new trial (fresh weights from its seed, fresh counters).</summary>
    public void SetupLane(int lane, TrainableContext trial, TrialConfig config)
    {
        var l = _lanes[lane];
        l.Trial = trial;
        l.Config = config;
        l.Iteration = 0;
        _counters[lane] = new HostCounters();
        Array.SetupLane(l);
    }

    /// <summary>One fused iteration of <paramref name="lanes"/>; an exception thrown by the array fails them all (the caller's to report).</summary>
    public IReadOnlyList<LaneStep> Step(IReadOnlyList<int> lanes)
    {
        var members = lanes.Select(i =>
        {
            var lane = _lanes[i];
            lane.Iteration = Counters(i).Iteration;
            return lane;
        }).ToList();
        var clock = Context.TimeProvider;
        long start = clock.GetTimestamp();
        IReadOnlyList<LaneStepOutcome> outcomes;
        using (NewDisposeScope())
        {
            outcomes = Array.Step(members);
            if (outcomes.Count != members.Count)
                throw new InvalidOperationException($"{Array.GetType().Name}.Step returned {outcomes.Count} outcomes for {members.Count} lanes");
        }
        double seconds = clock.GetElapsedTime(start).TotalSeconds;

        var steps = new LaneStep[members.Count];
        for (int k = 0; k < members.Count; k++)
        {
            var (metrics, error) = outcomes[k];
            int lane = lanes[k];
            if (error is null && metrics is null) error = new InvalidOperationException($"{Array.GetType().Name}.Step gave lane {lane} neither metrics nor an error");
            if (error is null && metrics!.IsEndOfFunction) error = new InvalidOperationException("a fused array cannot end like a training function");
            if (error is not null)
            {
                DisposeTensors(metrics);
                steps[k] = new LaneStep(lane, null, error);
                continue;
            }
            var fields = Counters(lane).Advance(metrics!, seconds, _lanes[lane].Trial);
            _lanes[lane].Iteration = Counters(lane).Iteration;
            steps[k] = new LaneStep(lane, new PendingResult(metrics!, fields), null);
        }
        return steps;
    }

    /// <summary>Reads the tensor metrics of every lane's pending results with one device-to-host copy, in order.</summary>
    public IReadOnlyList<TrialResult> Materialize(IReadOnlyList<(int Lane, PendingResult Pending)> batch)
    {
        var results = PendingResult.ReadAll(batch.Select(b => b.Pending).ToList(), null);
        for (int i = 0; i < batch.Count; i++)
            if (_counters[batch[i].Lane] is { } counters) counters.Last = results[i];
        return results;
    }

    /// <summary>The lane's state laid out as the class's own checkpoint, plus its counters; the caller owns it.</summary>
    public TrainableState SaveLane(int lane)
    {
        TrainableState state;
        using (NewDisposeScope())
            state = Array.SaveLane(_lanes[lane]);
        Counters(lane).WriteTo(state);
        return state;
    }

    /// <summary>Restores any checkpoint of the trial (a lane's or the class's own); a memory checkpoint on this device is not copied.</summary>
    public void RestoreLane(int lane, Checkpoint checkpoint)
    {
        if (checkpoint is MemoryCheckpoint memory)
        {
            memory.WithState(Context.Device, state => RestoreLane(lane, state));
            return;
        }
        using var state = checkpoint.LoadState(Context.Device);
        RestoreLane(lane, state);
    }

    public void RestoreLane(int lane, TrainableState state)
    {
        using (NewDisposeScope())
            Array.RestoreLane(_lanes[lane], state);
        Counters(lane).ReadFrom(state);
        _lanes[lane].Iteration = Counters(lane).Iteration;
    }

    /// <summary>Copies the state and counters of lane <paramref name="from"/> into lane <paramref name="to"/> (PBT exploit inside one array).</summary>
    public void CopyLane(int from, int to)
    {
        using (NewDisposeScope())
            Array.CopyLane(_lanes[from], _lanes[to]);
        Counters(to).CopyFrom(Counters(from));
        _lanes[to].Iteration = Counters(to).Iteration;
    }

    /// <summary>A new config (same key) for the lane's trial, weights untouched; false when the array cannot.</summary>
    public bool ReconfigureLane(int lane, TrialConfig config)
    {
        if (!Array.ReconfigureLane(_lanes[lane], config)) return false;
        _lanes[lane].Config = config;
        return true;
    }

    public void ReleaseLane(int lane)
    {
        if (_counters[lane] is null) return;
        Array.ReleaseLane(_lanes[lane]);
        _counters[lane] = null;
    }

    public void Dispose() => Array.Dispose();

    private static void DisposeTensors(Metrics? metrics)
    {
        if (metrics is null) return;
        foreach (var (_, value) in metrics.Entries)
            if (value is Tensor t) t.Dispose();
    }

    private HostCounters Counters(int lane) =>
        _counters[lane] ?? throw new InvalidOperationException($"lane {lane} of array {Context.ArrayId} holds no trial");
}
