using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Trainables;

/// <summary>What a trainable knows about where it runs. Trainables know nothing of schedulers or other trials.</summary>
public sealed record TrainableContext
{
    public required string TrialId { get; init; }

    public string ExperimentTag { get; init; } = "";

    /// <summary>The trial's own directory (create it before writing: it exists only once something was written), or null when the run keeps no files.</summary>
    public string? LogDirectory { get; init; }

    /// <summary>The device slot granted to the trial.</summary>
    public required DeviceSlot Slot { get; init; }

    /// <summary>Where the trainable's tensors belong.</summary>
    public torch.Device Device => Slot.TorchDevice;

    /// <summary>A seed derived from the experiment seed and the trial, for reproducible initialisation.</summary>
    public long Seed { get; init; }

    public CancellationToken Cancellation { get; init; }

    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>The clock that times each step (time_this_iter_s, time_total_s) and stamps results; the controller's.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// A training job in class form (Ray's Trainable): <see cref="Setup"/> once, then <see cref="Step"/> per
/// iteration. <see cref="Save"/> and <see cref="Restore"/> move state in and out as a <see cref="TrainableState"/>
/// (tensors stay on the device); <see cref="Reset"/> lets a finished instance take a new config instead of
/// being rebuilt. Every call for one instance happens on the same thread, the trial's own. Tensors created in
/// <see cref="Setup"/> (outside a scope of its own) live until the trainable is disposed; <see cref="Step"/>,
/// <see cref="Save"/> and <see cref="Restore"/> run inside a dispose scope that frees what they create.
/// </summary>
public abstract class Trainable : IDisposable
{
    public TrainableContext Context { get; internal set; } = null!;

    /// <summary>Iterations completed so far (the count Ray calls <c>self.iteration</c>).</summary>
    public long Iteration { get; internal set; }

    /// <summary>The config of the current trial.</summary>
    public TrialConfig Config { get; internal set; } = TrialConfig.Empty;

    public abstract void Setup(TrialConfig config);

    public abstract Metrics Step();

    /// <summary>A snapshot of the trainable's state on its device. The caller owns the returned state.</summary>
    public virtual TrainableState Save() =>
        throw new NotSupportedException($"trainable {GetType().Name} does not support checkpoints: override Save and Restore");

    /// <summary>Loads <paramref name="state"/>; it is only lent for the call, so copy what you keep.</summary>
    public virtual void Restore(TrainableState state) =>
        throw new NotSupportedException($"trainable {GetType().Name} does not support checkpoints: override Save and Restore");

    /// <summary>Takes a new config for reuse by the next trial; return false when that is not possible.</summary>
    public virtual bool Reset(TrialConfig newConfig) => false;

    /// <summary>Tensors <see cref="Setup"/> created, freed after <see cref="Dispose(bool)"/>.</summary>
    internal OwnedTensors SetupTensors { get; } = new();

    public void Dispose()
    {
        Dispose(true);
        SetupTensors.Dispose();
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}

/// <summary>Implemented by trainables that choose their own resources from the config (Ray's default_resource_request).</summary>
public interface IHasDefaultResources
{
    static abstract Resources? DefaultResourceRequest(TrialConfig config);
}

/// <summary>
/// Implemented by trainables that need something from outside the process (a data set on disk): a sweep spec naming one is
/// checked before anything runs, so what is missing is a one-line input error, not a sweep of errored trials.
/// </summary>
public interface IHasPrerequisites
{
    /// <summary>One line naming what is missing and how to get it; null when everything is there.</summary>
    static abstract string? MissingPrerequisite();
}

/// <summary>Marks a class or a <see cref="TrainFunction"/>-shaped static method for <see cref="TrainableRegistry.RegisterAssembly"/>.</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false)]
public sealed class TrainableAttribute(string name) : Attribute
{
    public string Name { get; } = name;

    public string Description { get; init; } = "";
}
