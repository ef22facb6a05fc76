using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Ray's DistributeResources allocation (add_bundles=False, the default; this project has no placement-group bundles):
/// spreads the machine's CPUs and GPUs evenly over the live trials, never below the base request.
/// <para>
/// A trial grows in steps of <c>increase_by</c> (one GPU when the base asks for a GPU, else one CPU, unless given). The
/// fair share is found by handing out steps round-robin to the live trials from what is left after every trial has its
/// base: the number of steps the first trial gets is the cap. A trial then gets as many steps as the currently free
/// resources allow (free = total - reserved - what every live trial asks for now), up to the cap (and up to
/// <c>increase_by_times</c> steps when that is positive); when free is negative it gives steps back. Nothing changes on
/// a result with training_iteration below 1. Fractional free amounts are counted in whole steps, as Python's // does.
/// </para>
/// </summary>
public sealed class DistributeResources
{
    /// <param name="increaseByCpu">CPUs per step (with <paramref name="increaseByGpu"/>); both zero means Ray's default step.</param>
    /// <param name="increaseByGpu">GPUs per step.</param>
    /// <param name="increaseByTimes">At most this many steps above the base; below 1 means no limit.</param>
    /// <param name="reserveCpu">CPUs never handed out.</param>
    /// <param name="reserveGpu">GPUs never handed out.</param>
    public DistributeResources(double increaseByCpu = 0, double increaseByGpu = 0, int increaseByTimes = -1, double reserveCpu = 0, double reserveGpu = 0)
    {
        IncreaseByCpu = OptionChecks.NonNegative(increaseByCpu, nameof(DistributeResources), nameof(increaseByCpu));
        IncreaseByGpu = OptionChecks.NonNegative(increaseByGpu, nameof(DistributeResources), nameof(increaseByGpu));
        IncreaseByTimes = increaseByTimes;
        ReserveCpu = OptionChecks.NonNegative(reserveCpu, nameof(DistributeResources), nameof(reserveCpu));
        ReserveGpu = OptionChecks.NonNegative(reserveGpu, nameof(DistributeResources), nameof(reserveGpu));
    }

    public double IncreaseByCpu { get; }

    public double IncreaseByGpu { get; }

    public int IncreaseByTimes { get; }

    public double ReserveCpu { get; }

    public double ReserveGpu { get; }

    public Resources? Allocate(ITrialControl control, Trial trial, TrialResult result, ResourceChangingScheduler scheduler)
    {
        if (result.TrainingIteration < 1) return null;
        var baseResources = scheduler.BaseTrialResources ?? new Resources(cpu: 1, gpu: 0);
        double baseCpu = baseResources.Cpu.ToDouble(), baseGpu = baseResources.Gpu.ToDouble();

        var (stepCpu, stepGpu) = (IncreaseByCpu, IncreaseByGpu);
        if (stepCpu == 0 && stepGpu == 0) (stepCpu, stepGpu) = baseGpu > 0 ? (0.0, 1.0) : (1.0, 0.0);

        var inventory = control.Allocator.Inventory;
        double totalCpu = inventory.CpuCores - ReserveCpu;
        double totalGpu = inventory.Gpus.Length - ReserveGpu;
        var live = control.Trials.Where(t => t.Status is TrialStatus.Pending or TrialStatus.Running or TrialStatus.Paused).ToList();
        if (live.Count == 0) return null;
        double freeCpu = totalCpu - live.Sum(t => t.Resources.CpuTotal.ToDouble());
        double freeGpu = totalGpu - live.Sum(t => t.Resources.GpuTotal.ToDouble());

        int cap = FairShare(live.Count, baseCpu, baseGpu, stepCpu, stepGpu, totalCpu, totalGpu);
        double addedCpu = trial.Resources.Cpu.ToDouble() - baseCpu;
        double addedGpu = trial.Resources.Gpu.ToDouble() - baseGpu;
        (addedCpu, addedGpu) = Modify(addedCpu, addedGpu, stepCpu, stepGpu, freeCpu, freeGpu, maxMultiplier: -1, maxIncreaseByTimes: cap);
        return baseResources.WithCpu(baseCpu + addedCpu).WithGpu(baseGpu + addedGpu);
    }

    /// <summary>The number of steps the first live trial would get if the machine were shared out round-robin from scratch.</summary>
    private int FairShare(int trials, double baseCpu, double baseGpu, double stepCpu, double stepGpu, double totalCpu, double totalGpu)
    {
        var added = new (double Cpu, double Gpu)[trials];
        var atLimit = new HashSet<int>();
        double leftCpu = totalCpu - baseCpu * trials, leftGpu = totalGpu - baseGpu * trials;
        int cap = 0;
        for (int i = 0; atLimit.Count < trials && leftCpu >= stepCpu && leftGpu >= stepGpu; i++)
        {
            int index = i % trials;
            var before = added[index];
            added[index] = Modify(before.Cpu, before.Gpu, stepCpu, stepGpu, leftCpu, leftGpu, maxMultiplier: 1, maxIncreaseByTimes: -1);
            double gainCpu = added[index].Cpu - before.Cpu, gainGpu = added[index].Gpu - before.Gpu;
            if (gainCpu == 0 && gainGpu == 0) atLimit.Add(index);
            else if (index == 0) cap++;
            leftCpu -= gainCpu;
            leftGpu -= gainGpu;
        }
        return cap;
    }

    /// <summary>Ray's _modify_bundles_with_free_resources for a single bundle.</summary>
    private (double Cpu, double Gpu) Modify(double cpu, double gpu, double stepCpu, double stepGpu, double freeCpu, double freeGpu, int maxMultiplier, int maxIncreaseByTimes)
    {
        int multiplier = Multiplier(stepCpu, stepGpu, freeCpu, freeGpu, maxMultiplier);
        if (multiplier < 0)
            return (Math.Max(cpu + stepCpu * multiplier, 0), Math.Max(gpu + stepGpu * multiplier, 0));
        if (multiplier == 0) return (cpu, gpu);

        double newCpu = cpu + stepCpu * multiplier, newGpu = gpu + stepGpu * multiplier;
        int limit = maxIncreaseByTimes;
        if (limit > 0 && IncreaseByTimes > 0) limit = Math.Min(limit, IncreaseByTimes);
        else if (IncreaseByTimes > 0) limit = IncreaseByTimes;
        if (limit > 0)
        {
            newCpu = Math.Min(newCpu, stepCpu * limit);
            newGpu = Math.Min(newGpu, stepGpu * limit);
        }
        return (newCpu, newGpu);
    }

    private static int Multiplier(double stepCpu, double stepGpu, double freeCpu, double freeGpu, int maxMultiplier)
    {
        double multiplier = stepCpu > 0 && stepGpu > 0
            ? Math.Min(Math.Floor(freeCpu / stepCpu), Math.Floor(freeGpu / stepGpu))
            : stepGpu > 0 ? Math.Floor(freeGpu / stepGpu) : Math.Floor(freeCpu / stepCpu);
        if (maxMultiplier > 0 && multiplier > 0) multiplier = Math.Min(maxMultiplier, multiplier);
        return (int)multiplier;
    }
}
