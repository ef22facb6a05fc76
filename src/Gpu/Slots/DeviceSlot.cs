using System.Collections.Immutable;
using TorchSharp;
using TorchTrials.Gpu.Cuda;

namespace TorchTrials.Gpu;

/// <summary>A share of one GPU held by a slot: which device, what fraction, and the memory it may use.</summary>
public sealed record GpuShare(int DeviceIndex, ResourceAmount Fraction, long MemoryCapBytes, bool UsableForTensors);

/// <summary>
/// A grant of the <see cref="DeviceSlotAllocator"/>: CPUs, GPU shares packed on devices, a memory cap and,
/// on CUDA, a stream of its own. Released exactly once through the allocator that made it.
/// </summary>
public sealed class DeviceSlot
{
    private int _lost;

    internal DeviceSlot(long id, string owner, Resources request, ImmutableArray<GpuShare> gpus, CudaStream? stream, DeviceSlotAllocator allocator)
    {
        Id = id;
        Owner = owner;
        Request = request;
        Gpus = gpus;
        Stream = stream;
        Allocator = allocator;
    }

    public long Id { get; }

    /// <summary>Who holds it (a trial id), for messages.</summary>
    public string Owner { get; }

    public Resources Request { get; }

    public ImmutableArray<GpuShare> Gpus { get; }

    /// <summary>The slot's own CUDA stream; null on CPU or simulated GPUs.</summary>
    public CudaStream? Stream { get; }

    internal DeviceSlotAllocator Allocator { get; }

    /// <summary>True once the slot went back to its allocator.</summary>
    public bool Released { get; internal set; }

    /// <summary>Intra-op threads the slot's CPU share pays for: the whole CPUs granted, at least one.</summary>
    public int CpuThreads => Math.Max(1, (int)(Request.Cpu.Units / ResourceAmount.Scale));

    /// <summary>The device tensors of this slot live on: the first GPU share when CUDA can use it, else the CPU.</summary>
    public torch.Device TorchDevice =>
        Gpus.Length > 0 && Gpus[0].UsableForTensors ? new torch.Device(DeviceType.CUDA, Gpus[0].DeviceIndex) : torch.CPU;

    /// <summary>The devices the slot's GPU shares lie on (<c>GPU0</c>, <c>GPU0+GPU1</c>), or <c>CPU</c> without a GPU: where a trial ran, for reports.</summary>
    public string Placement => Gpus.Length == 0 ? "CPU" : string.Join("+", Gpus.Select(g => $"GPU{g.DeviceIndex}"));

    /// <summary>Memory cap on the primary GPU share in bytes (0 without a GPU).</summary>
    public long GpuMemoryCapBytes => Gpus.Length > 0 ? Gpus[0].MemoryCapBytes : 0;

    /// <summary>True once a device under this slot was lost; the trial on it must fail over.</summary>
    public bool IsLost => Volatile.Read(ref _lost) != 0;

    internal void MarkLost() => Volatile.Write(ref _lost, 1);

    public override string ToString()
    {
        var gpus = Gpus.Length == 0 ? "" : " on " + string.Join("+", Gpus.Select(g => $"GPU{g.DeviceIndex}x{g.Fraction}"));
        return $"slot {Id} ({Request}{gpus}) held by {Owner}";
    }
}
