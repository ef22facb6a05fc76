using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// One trial's run on one slot: the trainable host and the operations both executors perform on it. Every
/// method runs on the thread that owns the session (the controller thread inline, the trial's thread otherwise).
/// </summary>
internal sealed class TrialSession : IDisposable
{
    public TrialSession(Trial trial, DeviceSlot slot, int incarnation)
    {
        Trial = trial;
        Slot = slot;
        Incarnation = incarnation;
    }

    public Trial Trial { get; set; }

    public DeviceSlot Slot { get; }

    public int Incarnation { get; set; }

    public TrainableHost? Host { get; private set; }

    public void Setup(RegisteredTrainable entry, TrialConfig config, TrainableContext context) =>
        Host = TrainableHost.Create(entry, config, context);

    /// <summary>Up to <paramref name="steps"/> iterations, stopping early at a result that says done or asks for a checkpoint.</summary>
    public IReadOnlyList<TrialResult> Train(int steps)
    {
        var host = Host!;
        var pending = new List<PendingResult>(steps);
        for (int i = 0; i < steps; i++)
        {
            var step = host.Step();
            pending.Add(step);
            if (step.Done || step.ShouldCheckpoint) break;
        }
        return host.Materialize(pending);
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

    public void Restore(Checkpoint checkpoint) => Host!.Restore(checkpoint);

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

    public bool Reset(TrialConfig config, TrainableContext context) => Host!.Reset(config, context);

    public void Dispose()
    {
        Host?.Dispose();
        Host = null;
    }
}
