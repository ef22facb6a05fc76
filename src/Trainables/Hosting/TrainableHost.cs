using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Trainables;

/// <summary>A step's outcome before its tensor metrics are read from the device.</summary>
public sealed class PendingResult
{
    internal PendingResult(Metrics metrics, TrialResult fields)
    {
        Metrics = metrics;
        Fields = fields;
    }

    internal Metrics Metrics { get; }

    internal TrialResult Fields { get; }

    /// <summary>The step said it is done (or the training function returned).</summary>
    public bool Done => Fields.Done;

    /// <summary>The step asked for a checkpoint.</summary>
    public bool ShouldCheckpoint => Fields.ShouldCheckpoint;

    /// <summary>
    /// Reads every tensor metric of <paramref name="batch"/> with a single device-to-host copy and returns the finished
    /// results, disposing the tensors; an end-of-function step repeats the result before it (or <paramref name="last"/>).
    /// </summary>
    internal static IReadOnlyList<TrialResult> ReadAll(IReadOnlyList<PendingResult> batch, TrialResult? last)
    {
        var tensors = new List<Tensor>();
        foreach (var pending in batch)
            foreach (var (_, value) in pending.Metrics.Entries)
                if (value is Tensor t) tensors.Add(t);

        double[] values = Array.Empty<double>();
        if (tensors.Count > 0)
        {
            using var scope = NewDisposeScope();
            using var stacked = stack(tensors.Select(t => t.detach().reshape(1).to(ScalarType.Float64)).ToArray()).cpu();
            values = stacked.data<double>().ToArray();
            foreach (var t in tensors) t.Dispose();
        }

        var results = new TrialResult[batch.Count];
        int next = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var pending = batch[i];
            if (pending.Metrics.IsEndOfFunction)
            {
                results[i] = (i > 0 ? results[i - 1] : last ?? pending.Fields) with { Done = true, IsDuplicate = true };
                continue;
            }
            var entries = new List<KeyValuePair<string, object>>(pending.Metrics.Count);
            foreach (var (key, value) in pending.Metrics.Entries)
                entries.Add(new(key, value is Tensor ? values[next++] : value));
            results[i] = pending.Fields with { Metrics = entries };
        }
        return results;
    }
}

/// <summary>
/// Runs one trainable on its trial's thread and does what Ray's Trainable base class does around the user's
/// code: counts iterations, times them, accumulates timesteps and episodes, resets the since-restore counters on
/// restore, and carries those counters inside checkpoints. Tensor metrics are read in batches
/// (<see cref="Materialize"/>): one host transfer per batch rather than one per value.
/// </summary>
public sealed class TrainableHost : IDisposable
{
    /// <summary>Metadata key a trainable may set in a saved state to say which iteration the state belongs to.</summary>
    public const string StateIterationKey = "trainable_iteration";

    private HostCounters _counters = new();

    private TrainableHost(Trainable trainable, TrainableContext context)
    {
        Trainable = trainable;
        Context = context;
    }

    public Trainable Trainable { get; }

    public TrainableContext Context { get; private set; }

    public long Iteration => _counters.Iteration;

    /// <summary>Builds and sets up the trainable; a failure here disposes what was built and propagates.</summary>
    public static TrainableHost Create(RegisteredTrainable entry, TrialConfig config, TrainableContext context)
    {
        var trainable = entry.Create();
        try
        {
            trainable.Context = context;
            trainable.Config = config;
            // Setup's tensors are the trainable's until Dispose; the scope keeps its temporaries from finalizers meanwhile.
            using (var scope = NewDisposeScope())
            {
                trainable.Setup(config);
                trainable.SetupTensors.Adopt(scope);
            }
            return new TrainableHost(trainable, context);
        }
        catch
        {
            trainable.Dispose();
            throw;
        }
    }

    /// <summary>One iteration inside a dispose scope (tensor metrics leave it); the metrics are still on the device.</summary>
    public PendingResult Step()
    {
        Trainable.Iteration = _counters.Iteration;
        var clock = Context.TimeProvider;
        long start = clock.GetTimestamp();
        Metrics metrics;
        using (NewDisposeScope())
            metrics = Trainable.Step() ?? throw new InvalidOperationException($"{Trainable.GetType().Name}.Step returned null");
        double seconds = clock.GetElapsedTime(start).TotalSeconds;

        if (metrics.IsEndOfFunction)
            return new PendingResult(metrics, (_counters.Last ?? EmptyResult()) with { Done = true, IsDuplicate = true });
        return new PendingResult(metrics, _counters.Advance(metrics, seconds, Context));
    }

    /// <summary>One iteration, read at once.</summary>
    public TrialResult Train() => Materialize(new[] { Step() })[0];

    /// <summary>
    /// Reads every tensor metric of <paramref name="batch"/> with a single device-to-host copy and returns the
    /// finished results, disposing the tensors.
    /// </summary>
    public IReadOnlyList<TrialResult> Materialize(IReadOnlyList<PendingResult> batch)
    {
        var results = PendingResult.ReadAll(batch, _counters.Last);
        if (results.Count > 0) _counters.Last = results[^1];
        return results;
    }

    /// <summary>The trainable's state plus the host's counters.</summary>
    public TrainableState Save()
    {
        TrainableState state;
        using (NewDisposeScope())
            state = Trainable.Save();
        _counters.WriteTo(state);
        return state;
    }

    /// <summary>Restores from any checkpoint; a memory checkpoint already on this device is restored without a copy.</summary>
    public void Restore(Checkpoint checkpoint)
    {
        if (checkpoint is MemoryCheckpoint memory)
        {
            // Not cancellable: the trial's token interrupts training steps, while this wait is for a save already queued on the producer's thread.
            memory.WithState(Context.Device, Restore);
            return;
        }
        using var state = checkpoint.LoadState(Context.Device);
        Restore(state);
    }

    public void Restore(TrainableState state)
    {
        using (NewDisposeScope())
            Trainable.Restore(state);
        _counters.ReadFrom(state);
        Trainable.Iteration = _counters.Iteration;
    }

    /// <summary>Reuses the trainable for a new trial (Ray's reset_config); false when the trainable cannot.</summary>
    public bool Reset(TrialConfig config, TrainableContext context)
    {
        Trainable.Context = context;
        if (!Trainable.Reset(config)) return false;
        Trainable.Config = config;
        Context = context;
        _counters = new HostCounters();
        Trainable.Iteration = 0;
        return true;
    }

    /// <summary>Applies a new config to the same trial without resetting counters (PBT's explore step).</summary>
    public bool ApplyConfig(TrialConfig config)
    {
        if (!Trainable.Reset(config)) return false;
        Trainable.Config = config;
        return true;
    }

    public void Dispose() => Trainable.Dispose();

    private TrialResult EmptyResult() => new()
    {
        Metrics = Array.Empty<KeyValuePair<string, object>>(),
        TrialId = Context.TrialId,
        ExperimentTag = Context.ExperimentTag,
    };
}
