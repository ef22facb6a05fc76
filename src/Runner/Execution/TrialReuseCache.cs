using TorchTrials.Gpu;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Ray's reuse_actors cache (ray_trial_executor's <c>_cached_actor_pg</c>): at most one finished trial's run (its
/// trainable and its slot) is kept, and only the next trial asking for exactly the same resources takes it (through
/// Reset). A cached run whose slot another request needs is dropped so the slot goes back to the allocator. Controller
/// thread only; <typeparamref name="TRun"/> is what an executor keeps per running trial.
/// </summary>
internal sealed class TrialReuseCache<TRun>(bool enabled, Func<TRun, TrialSession> sessionOf, Action<TRun> discard) where TRun : class
{
    private TRun? _cached;

    /// <summary>True when a slot for the trial's resources is free now, counting the cached one.</summary>
    public bool HasResourcesFor(Trial trial, DeviceSlotAllocator allocator)
    {
        if (_cached is not null && sessionOf(_cached).Slot.Request == trial.Resources) return true;
        if (_cached is not null && !allocator.CanAllocate(trial.Resources)) Drop();
        return allocator.CanAllocate(trial.Resources);
    }

    /// <summary>The cached run when reuse is on and it holds exactly the trial's resources (it leaves the cache); otherwise drops it.</summary>
    public TRun? TakeFor(Trial trial)
    {
        if (enabled && _cached is { } cached && sessionOf(cached).Slot.Request == trial.Resources)
        {
            _cached = null;
            return cached;
        }
        Drop();
        return null;
    }

    /// <summary>Keeps a stopped run for the next trial when reuse is on, the cache is empty and the run ended cleanly.</summary>
    public bool TryKeep(TRun run, bool error)
    {
        var session = sessionOf(run);
        if (error || !enabled || _cached is not null || session.Slot.IsLost || session.Broken) return false;
        _cached = run;
        return true;
    }

    /// <summary>Drops the cached run if it sits on <paramref name="slot"/> (a lost device).</summary>
    public void DropIfOn(DeviceSlot slot)
    {
        if (_cached is { } cached && sessionOf(cached).Slot == slot) Drop();
    }

    public void Drop()
    {
        if (_cached is not { } cached) return;
        _cached = null;
        discard(cached);
    }
}
