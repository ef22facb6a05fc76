using System.Diagnostics;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// One trial's run on one slot: the trainable host and every operation an executor performs on it (setup, training,
/// saves, restores, exploit, reset for reuse). Every executor drives trials through this one type, so they train, save
/// and fail alike. Every method runs on the thread that owns the session (the controller thread inline, the trial's
/// thread otherwise); <see cref="StopRequested"/> and <see cref="Broken"/> may be read from either.
/// </summary>
internal sealed class TrialSession : IDisposable
{
    private const int ChunkResults = 256;
    private const double ChunkMilliseconds = 20;

    private volatile bool _stopRequested;
    private volatile bool _broken;

    public TrialSession(Trial trial, DeviceSlot slot, int incarnation)
    {
        Trial = trial;
        Slot = slot;
        Incarnation = incarnation;
    }

    public Trial Trial { get; private set; }

    public DeviceSlot Slot { get; }

    public int Incarnation { get; private set; }

    public TrainableHost? Host { get; private set; }

    /// <summary>Set when the trial must stop between steps (<see cref="Train"/> checks it before each step).</summary>
    public bool StopRequested
    {
        get => _stopRequested;
        set => _stopRequested = value;
    }

    /// <summary>An operation failed and was reported; later operations of this incarnation are skipped.</summary>
    public bool Broken
    {
        get => _broken;
        set => _broken = value;
    }

    /// <summary>The registered trainable of <paramref name="trial"/>; an unknown name cannot start.</summary>
    public static RegisteredTrainable Lookup(TrainableRegistry registry, Trial trial)
    {
        try
        {
            return registry.Get(trial.TrainableName);
        }
        catch (KeyNotFoundException e)
        {
            throw new TrialStartException($"trial {trial.Id}: {e.Message}", e);
        }
    }

    /// <summary>Builds and sets up the trainable; a failure is a <see cref="TrialStartException"/> naming the trainable.</summary>
    public void Setup(RegisteredTrainable entry, TrainableContext context)
    {
        try
        {
            Host = TrainableHost.Create(entry, Trial.Config, context);
        }
        catch (Exception e)
        {
            throw new TrialStartException($"trial {Trial.Id}: could not start trainable '{Trial.TrainableName}': {e.Message}", e);
        }
    }

    /// <summary>Hands this run (trainable and slot) to the next trial, as Ray's reuse_actors does.</summary>
    public void Renew(Trial trial, int incarnation)
    {
        Trial = trial;
        Incarnation = incarnation;
        StopRequested = false;
        Broken = false;
    }

    /// <summary>
    /// Resets the reused trainable to the new trial's config (Ray's reset_config); a trainable that cannot reset
    /// cannot be reused, which is a <see cref="TrialStartException"/> (Ray raises at start for the same reason).
    /// </summary>
    public void ResetForReuse(TrainableContext context)
    {
        bool reset;
        try
        {
            reset = Host!.Reset(Trial.Config, context);
        }
        catch (Exception e)
        {
            throw new TrialStartException($"trial {Trial.Id}: resetting the reused trainable failed: {e.Message}", e);
        }
        if (!reset) throw new TrialStartException("Trainable runner reuse requires Reset() to be implemented and return true.");
    }

    /// <summary>
    /// Runs up to <paramref name="steps"/> iterations and hands their results to <paramref name="publish"/> in chunks,
    /// each chunk's tensor metrics read from the device at once: the first result of a grant at once (a new trial shows
    /// progress immediately), later ones every 20 ms or 256 results. Stops early at a result that says done or asks for
    /// a checkpoint, and between steps when <see cref="StopRequested"/>. The last chunk (empty when stopped before any
    /// step) is published with <c>last</c> true.
    /// </summary>
    public void Train(int steps, Action<IReadOnlyList<TrialResult>, bool> publish)
    {
        var host = Host ?? throw new InvalidOperationException($"trial {Trial.Id} has no trainable");
        var chunk = new List<PendingResult>();
        long chunkStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < steps; i++)
        {
            if (StopRequested) break;
            var step = host.Step();
            chunk.Add(step);
            bool last = i == steps - 1 || step.Done || step.ShouldCheckpoint;
            bool due = i == 0 || chunk.Count >= ChunkResults || Stopwatch.GetElapsedTime(chunkStart).TotalMilliseconds >= ChunkMilliseconds;
            if (last || due)
            {
                publish(host.Materialize(chunk), last);
                chunk = new List<PendingResult>();
                chunkStart = Stopwatch.GetTimestamp();
            }
            if (last) return;
        }
        publish(chunk.Count > 0 ? host.Materialize(chunk) : Array.Empty<TrialResult>(), true);
    }

    public void SaveToMemory(MemoryCheckpoint checkpoint)
    {
        try
        {
            checkpoint.ProducerStream = Slot.Stream;
            checkpoint.Complete(Host!.Save());
        }
        catch (Exception e)
        {
            checkpoint.Fail(e);
            throw;
        }
    }

    public PersistentCheckpoint SaveToDisk(string directory, TrialResult? result)
    {
        using var state = Host!.Save();
        return PersistentCheckpoint.Write(directory, state, result);
    }

    /// <summary>Loads a memory checkpoint; a failure names the trial (a lost device's cancellation passes unchanged).</summary>
    public void Restore(MemoryCheckpoint checkpoint)
    {
        try
        {
            Host!.Restore(checkpoint);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException($"trial {Trial.Id}: restoring its memory checkpoint failed: {e.Message}", e);
        }
    }

    public void Restore(PersistentCheckpoint checkpoint) => Host!.Restore(checkpoint);

    /// <summary>
    /// The new config first, then the donor's state, as Ray restarts an exploited trial (reset_config, then restore): a
    /// Reset may rebuild what the state is then loaded into, and a function trainable's Reset forgets its resume point.
    /// </summary>
    public void Exploit(Checkpoint donor, TrialConfig config)
    {
        if (!Host!.ApplyConfig(config))
            throw new InvalidOperationException($"trainable of trial {Trial.Id} cannot take a new config in place (Reset returned false), so PBT cannot explore it");
        Host.Restore(donor);
    }

    /// <summary>
    /// Marks the session broken and describes <paramref name="error"/> as every executor reports it: a cancellation
    /// caused by a lost device says so. <paramref name="trial"/> and <paramref name="incarnation"/> are those the failed
    /// operation ran for (taken before it ran, since a reused session may have moved on since).
    /// </summary>
    public FailureEvent Fail(Trial trial, int incarnation, Exception error)
    {
        Broken = true;
        bool lost = Slot.IsLost;
        return new FailureEvent(trial, incarnation, error is OperationCanceledException && lost
            ? new InvalidOperationException($"the device of trial {trial.Id} was lost", error) : error, lost);
    }

    public void Dispose()
    {
        Host?.Dispose();
        Host = null;
    }
}
