using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using TorchTrials.Gpu.Cuda;

namespace TorchTrials.Gpu;

/// <summary>A resource request that this machine can never satisfy, named precisely.</summary>
public sealed class ResourceRequestException : ArgumentException
{
    public ResourceRequestException(string message) : base(message) { }
}

/// <summary>
/// Hands out <see cref="DeviceSlot"/>s from a <see cref="DeviceInventory"/>. A fractional GPU request is
/// packed on a single device (best fit: the device left fullest), whole-GPU requests take whole free
/// devices, and each GPU share carries a memory cap (the request's gpu_memory, else its fraction of the
/// device). Caps are admission control: their sum never exceeds a device's memory. Thread-safe.
/// </summary>
public sealed class DeviceSlotAllocator
{
    private readonly object _gate = new();
    private readonly GpuState[] _gpus;
    private readonly Dictionary<string, ResourceAmount> _customUsed = new(StringComparer.Ordinal);
    private readonly HashSet<DeviceSlot> _live = new();
    private readonly List<DeviceSlot> _lost = new();
    private readonly CudaStreamApi? _streams;
    private ResourceAmount _cpuUsed;
    private long _memoryUsed;
    private long _nextId;

    /// <param name="inventory">The machine.</param>
    /// <param name="streams">CUDA stream API; when given, slots on CUDA devices get a pool stream each.</param>
    public DeviceSlotAllocator(DeviceInventory inventory, CudaStreamApi? streams = null)
    {
        Inventory = inventory;
        _streams = streams;
        _gpus = inventory.Gpus.Select(g => new GpuState(g)).ToArray();
    }

    public DeviceInventory Inventory { get; }

    /// <summary>Slots granted and not yet released.</summary>
    public int LiveSlots
    {
        get { lock (_gate) return _live.Count; }
    }

    /// <summary>Throws <see cref="ResourceRequestException"/> when <paramref name="request"/> could not fit even on an idle machine.</summary>
    public void Validate(Resources request)
    {
        var why = WhyNeverFits(request);
        if (why is not null) throw new ResourceRequestException(why);
    }

    /// <summary>Null when the request can fit on this machine once enough is free; otherwise why it never can.</summary>
    public string? WhyNeverFits(Resources request)
    {
        var inv = Inventory;
        if (request.CpuTotal > ResourceAmount.From(inv.CpuCores, "cpus"))
            return $"requests {request.CpuTotal} CPUs but this machine has {inv.CpuCores}";
        if (request.MemoryTotal > inv.HostMemoryBytes)
            return $"requests {Gib(request.MemoryTotal)} GiB of memory but this machine has {Gib(inv.HostMemoryBytes)} GiB";
        var gpu = request.GpuTotal;
        if (gpu > ResourceAmount.One && !gpu.IsWhole)
            return $"requests {gpu} GPUs: a request above one GPU must be a whole number of GPUs";
        if (gpu > ResourceAmount.From(inv.Gpus.Length, "gpus"))
            return inv.Gpus.Length == 0
                ? $"requests {gpu} GPUs but this machine has none"
                : $"requests {gpu} GPUs but this machine has {inv.Gpus.Length}";
        if (request.GpuMemory > 0 && gpu.IsZero)
            return "requests gpu_memory without a GPU (set gpu as well)";
        if (!gpu.IsZero)
        {
            long largest = inv.Gpus.Max(g => g.TotalMemoryBytes);
            long cap = request.GpuMemory > 0 ? request.GpuMemory : 0;
            if (cap > largest)
                return $"requests {Gib(cap)} GiB of GPU memory but the largest GPU has {Gib(largest)} GiB";
        }
        foreach (var name in request.CustomNames)
        {
            var want = request.CustomTotal(name);
            if (want.IsZero) continue;
            if (!inv.Custom.TryGetValue(name, out var have))
                return $"requests custom resource '{name}', which this machine does not offer";
            if (want > have)
                return $"requests {want} of custom resource '{name}' but this machine has {have}";
        }
        return null;
    }

    /// <summary>True when <paramref name="request"/> fits in what is free right now.</summary>
    public bool CanAllocate(Resources request)
    {
        lock (_gate) return Place(request) is not null;
    }

    /// <summary>Grants a slot, or returns null when not enough is free now. Throws when the request can never fit.</summary>
    public DeviceSlot? TryAllocate(Resources request, string owner)
    {
        Validate(request);
        lock (_gate)
        {
            if (Place(request) is not { } placement) return null;

            _cpuUsed += request.CpuTotal;
            _memoryUsed += request.MemoryTotal;
            foreach (var name in request.CustomNames)
                _customUsed[name] = _customUsed.GetValueOrDefault(name) + request.CustomTotal(name);
            foreach (var share in placement)
            {
                _gpus[share.DeviceIndex].Used += share.Fraction;
                _gpus[share.DeviceIndex].MemoryUsed += share.MemoryCapBytes;
            }

            CudaStream? stream = null;
            if (_streams is not null && placement.Length > 0 && placement[0].UsableForTensors)
                stream = _streams.GetStreamFromPool(placement[0].DeviceIndex);

            var slot = new DeviceSlot(++_nextId, owner, request, placement, stream, this);
            foreach (var share in placement) _gpus[share.DeviceIndex].Slots.Add(slot);
            _live.Add(slot);
            return slot;
        }
    }

    /// <summary>Returns a slot's resources. A slot is released exactly once; a second release throws.</summary>
    public void Release(DeviceSlot slot)
    {
        if (!ReferenceEquals(slot.Allocator, this))
            throw new InvalidOperationException($"{slot} was granted by another allocator");
        lock (_gate)
        {
            if (slot.Released || !_live.Remove(slot))
                throw new InvalidOperationException($"{slot} was already released");
            slot.Released = true;
            var request = slot.Request;
            _cpuUsed -= request.CpuTotal;
            _memoryUsed -= request.MemoryTotal;
            foreach (var name in request.CustomNames)
                _customUsed[name] -= request.CustomTotal(name);
            foreach (var share in slot.Gpus)
            {
                var gpu = _gpus[share.DeviceIndex];
                gpu.Slots.Remove(slot);
                gpu.Used -= share.Fraction;
                gpu.MemoryUsed -= share.MemoryCapBytes;
            }
        }
    }

    /// <summary>
    /// Simulates losing a GPU (as Ray's node-removal test does with a node): the device offers nothing until
    /// <see cref="RestoreGpu"/>, and every live slot on it is marked lost and queued for <see cref="TakeLostSlots"/>.
    /// </summary>
    public IReadOnlyList<DeviceSlot> LoseGpu(int index)
    {
        lock (_gate)
        {
            var gpu = _gpus[index];
            gpu.Lost = true;
            var affected = gpu.Slots.Where(s => !s.IsLost).ToList();
            foreach (var slot in affected)
            {
                slot.MarkLost();
                _lost.Add(slot);
            }
            return affected;
        }
    }

    public void RestoreGpu(int index)
    {
        lock (_gate) _gpus[index].Lost = false;
    }

    /// <summary>Slots lost since the last call; each is returned once. They still need <see cref="Release"/>.</summary>
    public IReadOnlyList<DeviceSlot> TakeLostSlots()
    {
        lock (_gate)
        {
            if (_lost.Count == 0) return Array.Empty<DeviceSlot>();
            var taken = _lost.Where(s => !s.Released).ToList();
            _lost.Clear();
            return taken;
        }
    }

    /// <summary>Resources currently granted.</summary>
    public Resources Committed
    {
        get
        {
            lock (_gate)
            {
                return new Resources(
                    cpu: _cpuUsed.ToDouble(),
                    gpu: _gpus.Aggregate(ResourceAmount.Zero, (s, g) => s + g.Used).ToDouble(),
                    memory: _memoryUsed,
                    gpuMemory: _gpus.Sum(g => g.MemoryUsed),
                    custom: _customUsed.Where(kv => !kv.Value.IsZero).ToDictionary(kv => kv.Key, kv => kv.Value.ToDouble()));
            }
        }
    }

    /// <summary>One line, e.g. "Resources requested: 2/4 CPUs, 0.5/1 GPUs, 8.0/16.0 GiB GPU memory (a: 2/2)".</summary>
    public string DescribeUsage()
    {
        lock (_gate)
        {
            var live = _gpus.Where(g => !g.Lost).ToList();
            var gpuUsed = _gpus.Aggregate(ResourceAmount.Zero, (s, g) => s + g.Used);
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"Resources requested: {_cpuUsed}/{Inventory.CpuCores} CPUs, {gpuUsed}/{live.Count} GPUs, ");
            sb.Append(CultureInfo.InvariantCulture, $"{Gib(_gpus.Sum(g => g.MemoryUsed)):0.0}/{Gib(live.Sum(g => g.Device.TotalMemoryBytes)):0.0} GiB GPU memory");
            if (Inventory.Custom.Count > 0)
                sb.Append(" (").Append(string.Join(", ", Inventory.Custom.Select(kv => $"{kv.Key}: {_customUsed.GetValueOrDefault(kv.Key)}/{kv.Value}"))).Append(')');
            return sb.ToString();
        }
    }

    private ImmutableArray<GpuShare>? Place(Resources request)
    {
        if (_cpuUsed + request.CpuTotal > ResourceAmount.From(Inventory.CpuCores, "cpus")) return null;
        if (request.MemoryTotal > 0 && _memoryUsed + request.MemoryTotal > Inventory.HostMemoryBytes) return null;
        foreach (var name in request.CustomNames)
        {
            var want = request.CustomTotal(name);
            if (want.IsZero) continue;
            if (!Inventory.Custom.TryGetValue(name, out var have) || _customUsed.GetValueOrDefault(name) + want > have) return null;
        }

        var gpu = request.GpuTotal;
        if (gpu.IsZero) return ImmutableArray<GpuShare>.Empty;
        if (gpu < ResourceAmount.One)
        {
            GpuState? best = null;
            long bestCap = 0;
            foreach (var state in _gpus)
            {
                if (state.Lost) continue;
                long cap = request.GpuMemory > 0 ? request.GpuMemory : (long)(state.Device.TotalMemoryBytes * gpu.ToDouble());
                if (state.Used + gpu > ResourceAmount.One || state.MemoryUsed + cap > state.Device.TotalMemoryBytes) continue;
                if (best is null || state.Used > best.Used)
                {
                    best = state;
                    bestCap = cap;
                }
            }
            return best is null
                ? null
                : ImmutableArray.Create(new GpuShare(best.Device.Index, gpu, bestCap, best.Device.IsUsableForTensors));
        }

        int whole = (int)(gpu.Units / ResourceAmount.Scale);
        var free = _gpus.Where(g => !g.Lost && g.Used.IsZero && g.MemoryUsed == 0).Take(whole).ToList();
        if (free.Count < whole) return null;
        return free.Select(g => new GpuShare(g.Device.Index, ResourceAmount.One,
                request.GpuMemory > 0 ? request.GpuMemory : g.Device.TotalMemoryBytes, g.Device.IsUsableForTensors))
            .ToImmutableArray();
    }

    private static double Gib(long bytes) => bytes / (double)(1L << 30);

    private sealed class GpuState(GpuDevice device)
    {
        public GpuDevice Device { get; } = device;
        public ResourceAmount Used { get; set; }
        public long MemoryUsed { get; set; }
        public bool Lost { get; set; }
        public List<DeviceSlot> Slots { get; } = new();
    }
}
