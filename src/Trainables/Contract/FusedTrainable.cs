using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Trainables;

/// <summary>
/// Implemented by a <see cref="Trainable"/> class whose trials can also train fused: several same-shape trials as one
/// program on one slot (HFTA, Wang et al., MLSys 2021, repository UofT-EcoSystem/hfta: horizontally fused training
/// arrays). The class still trains alone; the executor chooses. Registration (<see cref="TrainableRegistry.Register{T}"/>,
/// <see cref="TrainableRegistry.RegisterAssembly"/>) picks both members up into <see cref="RegisteredTrainable.FusionKey"/>
/// and <see cref="RegisteredTrainable.CreateFusedArray"/>.
/// </summary>
public interface IFusableTrainable
{
    /// <summary>
    /// Trials whose configs give the same key may share one array: same architecture, batch size, data and optimizer kind
    /// (whatever fixes the shapes and the program). Hyperparameters that can differ per member (learning rate, betas,
    /// momentum, weight decay, dropout) stay out of the key. Null: this config trains alone.
    /// </summary>
    static abstract string? FusionKey(TrialConfig config);

    /// <summary>An empty array for configs of <see cref="FusedArrayContext.Key"/>, with <see cref="FusedArrayContext.Capacity"/> lanes.</summary>
    static abstract FusedTrainable CreateArray(FusedArrayContext context);
}

/// <summary>Where an array runs and what it holds.</summary>
public sealed record FusedArrayContext
{
    /// <summary>The array's id, unique in the experiment (the store and the live table show it next to each lane's trial).</summary>
    public required string ArrayId { get; init; }

    /// <summary>The <see cref="IFusableTrainable.FusionKey"/> every lane's config has.</summary>
    public required string Key { get; init; }

    /// <summary>Lanes (members) the array has room for.</summary>
    public required int Capacity { get; init; }

    /// <summary>The one device slot the whole array occupies.</summary>
    public required DeviceSlot Slot { get; init; }

    public torch.Device Device => Slot.TorchDevice;

    public CancellationToken Cancellation { get; init; }

    public ILogger Logger { get; init; } = NullLogger.Instance;

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>One lane of an array and the trial it holds now, as the array program sees it.</summary>
public sealed class FusedLane
{
    public FusedLane(int index) => Index = index;

    /// <summary>The lane's position in the member dimension, 0 to capacity-1.</summary>
    public int Index { get; }

    /// <summary>The trial in the lane: its id, seed, log directory (as a trainable training alone would see them).</summary>
    public TrainableContext Trial { get; set; } = null!;

    /// <summary>The trial's config (its key is the array's key).</summary>
    public TrialConfig Config { get; set; } = TrialConfig.Empty;

    /// <summary>Iterations the lane's trial has completed (what <see cref="Trainable.Iteration"/> is alone; data order depends on it).</summary>
    public long Iteration { get; set; }
}

/// <summary>What one iteration gave one lane: its metrics (tensors, read in batches by the runner), or the error its trial fails with.</summary>
public readonly record struct LaneStepOutcome(Metrics? Metrics, Exception? Error)
{
    public static LaneStepOutcome Ok(Metrics metrics) => new(metrics, null);

    public static LaneStepOutcome Failed(Exception error) => new(null, error);
}

/// <summary>
/// A fused training program: the tensors of up to <see cref="FusedArrayContext.Capacity"/> same-shape trials stacked along a
/// leading member dimension, trained by one program on one slot (HFTA's fused operators and optimizers). Each lane is its
/// own trial to the runner, and lanes are independent in time: a lane is set up, trained, saved, restored, copied and
/// released while the others keep training.
/// <para>
/// The contract the fused executor relies on:
/// <list type="bullet">
/// <item>Equivalence: a lane's trial gives the same per-iteration metrics (within float tolerance) as the same config
/// and seed trained alone by the class that implements <see cref="IFusableTrainable"/>: same initial weights, same data
/// order (from its seed and <see cref="FusedLane.Iteration"/>), same dropout masks (from its own generator), gradients of
/// its own loss only.</item>
/// <item>Lane checkpoints are interchangeable with the class's own: <see cref="SaveLane"/> returns a
/// <see cref="TrainableState"/> with the tensor names, shapes and metadata the class's <see cref="Trainable.Save"/> returns,
/// and <see cref="RestoreLane"/> accepts either, so a paused lane may resume in any compatible lane or alone, and a trial
/// that trained alone may resume in a lane.</item>
/// <item>A lane not passed to <see cref="Step"/> does not change (weights, optimizer state, generator).</item>
/// <item>A failure of one member (a non-finite loss) is that lane's <see cref="LaneStepOutcome.Error"/>; other lanes' results
/// are unaffected. An exception thrown by <see cref="Step"/> fails every lane passed to it.</item>
/// </list>
/// Every call for one array happens on the array's own thread; <see cref="Step"/>, <see cref="SaveLane"/>,
/// <see cref="RestoreLane"/> and <see cref="CopyLane"/> run inside a dispose scope that frees what they create.
/// </para>
/// </summary>
public abstract class FusedTrainable : IDisposable
{
    public FusedArrayContext Context { get; set; } = null!;

    public int Capacity => Context.Capacity;

    /// <summary>Initialises the lane for a new trial from <see cref="FusedLane.Trial"/>'s seed, exactly as the class's Setup would (weights, optimizer state, generator).</summary>
    public abstract void SetupLane(FusedLane lane);

    /// <summary>One iteration (what <see cref="Trainable.Step"/> does alone) for each lane in <paramref name="lanes"/>; one outcome per lane, in order.</summary>
    public abstract IReadOnlyList<LaneStepOutcome> Step(IReadOnlyList<FusedLane> lanes);

    /// <summary>A snapshot of the lane, laid out as the class's own checkpoint. The caller owns it.</summary>
    public abstract TrainableState SaveLane(FusedLane lane);

    /// <summary>Loads a lane checkpoint or one of the class's own into the lane; <paramref name="state"/> is lent for the call.</summary>
    public abstract void RestoreLane(FusedLane lane, TrainableState state);

    /// <summary>
    /// Gives the lane's trial a new config with the same key (a PBT exploit's mutated hyperparameters) without touching its
    /// weights; false when that is not possible.
    /// </summary>
    public abstract bool ReconfigureLane(FusedLane lane, TrialConfig config);

    /// <summary>Copies one lane's state into another (PBT exploit between lanes of one array); the default goes through a lane checkpoint, an override copies slices on the device.</summary>
    public virtual void CopyLane(FusedLane from, FusedLane to)
    {
        using var state = SaveLane(from);
        RestoreLane(to, state);
    }

    /// <summary>The lane's trial left it; the lane is idle until the next <see cref="SetupLane"/>.</summary>
    public virtual void ReleaseLane(FusedLane lane) { }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}
