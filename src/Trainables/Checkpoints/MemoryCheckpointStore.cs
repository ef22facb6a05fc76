using TorchTrials.Gpu.Cuda;

namespace TorchTrials.Trainables.Checkpoints;

/// <summary>What a <see cref="MemoryCheckpointStore"/> holds and has moved.</summary>
public sealed record MemoryCheckpointStoreStats(long DeviceBytes, long HostBytes, long DiskBytes, int SpillsToHost, int SpillsToDisk, int Live);

/// <summary>
/// Budgets memory checkpoints. Each accelerator device has a byte budget; past it, the oldest checkpoints on
/// that device move to host memory. Host memory (including checkpoints of CPU trials) has its own budget;
/// past it, the oldest move to safetensors files under the spill directory. Restores read them wherever
/// they are. Thread-safe: trial threads add checkpoints while others restore.
/// </summary>
public sealed class MemoryCheckpointStore
{
    private readonly object _gate = new();
    private readonly SortedDictionary<long, MemoryCheckpoint> _live = new();
    private readonly CudaStreamApi? _streams;
    private long _sequence;
    private int _spillsToHost;
    private int _spillsToDisk;

    /// <param name="deviceBudgetBytes">Bytes of checkpoints allowed on each accelerator device.</param>
    /// <param name="hostBudgetBytes">Bytes of checkpoints allowed in host memory.</param>
    /// <param name="spillDirectory">Where checkpoints go past the host budget.</param>
    /// <param name="streams">When given, a checkpoint's producer stream is synchronised before it is moved.</param>
    public MemoryCheckpointStore(long deviceBudgetBytes, long hostBudgetBytes, string spillDirectory, CudaStreamApi? streams = null)
    {
        if (deviceBudgetBytes < 0) throw new ArgumentOutOfRangeException(nameof(deviceBudgetBytes), "device_budget must not be negative");
        if (hostBudgetBytes < 0) throw new ArgumentOutOfRangeException(nameof(hostBudgetBytes), "host_budget must not be negative");
        DeviceBudgetBytes = deviceBudgetBytes;
        HostBudgetBytes = hostBudgetBytes;
        SpillDirectory = spillDirectory;
        _streams = streams;
    }

    /// <summary>A store large enough never to spill (tests, tiny models).</summary>
    public static MemoryCheckpointStore Unbounded(string spillDirectory) => new(long.MaxValue, long.MaxValue, spillDirectory);

    public long DeviceBudgetBytes { get; }

    public long HostBudgetBytes { get; }

    public string SpillDirectory { get; }

    /// <summary>Takes charge of <paramref name="checkpoint"/>; its bytes count once its state exists.</summary>
    public MemoryCheckpoint Add(MemoryCheckpoint checkpoint)
    {
        lock (_gate)
        {
            checkpoint.Sequence = ++_sequence;
            checkpoint.Store = this;
            _live[checkpoint.Sequence] = checkpoint;
        }
        if (checkpoint.IsReady) OnCompleted(checkpoint);
        return checkpoint;
    }

    internal void OnCompleted(MemoryCheckpoint checkpoint) => Enforce();

    internal void OnDeleted(MemoryCheckpoint checkpoint)
    {
        lock (_gate) _live.Remove(checkpoint.Sequence);
    }

    public MemoryCheckpointStoreStats Stats
    {
        get
        {
            lock (_gate)
            {
                long device = 0, host = 0, disk = 0;
                foreach (var c in _live.Values.Where(c => c.IsReady))
                {
                    switch (Where(c))
                    {
                        case Place.Accelerator: device += c.ByteSize; break;
                        case Place.HostMemory: host += c.ByteSize; break;
                        default: disk += c.ByteSize; break;
                    }
                }
                return new MemoryCheckpointStoreStats(device, host, disk, _spillsToHost, _spillsToDisk, _live.Count);
            }
        }
    }

    private long _readyBytes;

    private void Enforce()
    {
        lock (_gate)
        {
            // The common case: everything fits. Only walk the checkpoints when a budget may be exceeded.
            long total = 0;
            foreach (var c in _live.Values)
                if (c.IsReady && c.Location != MemoryLocation.Disk) total += c.ByteSize;
            _readyBytes = total;
            if (total <= Math.Min(DeviceBudgetBytes, HostBudgetBytes)) return;
            var ready = _live.Values.Where(c => c.IsReady).ToList();
            foreach (var group in ready.Where(c => Where(c) == Place.Accelerator).GroupBy(c => c.HomeDevice!.ToString()))
            {
                long used = group.Sum(c => c.ByteSize);
                foreach (var oldest in group.OrderBy(c => c.Sequence))
                {
                    if (used <= DeviceBudgetBytes) break;
                    if (oldest.ProducerStream is not null) _streams?.Synchronize(oldest.ProducerStream);
                    long freed = oldest.SpillToHost();
                    if (freed > 0) _spillsToHost++;
                    used -= freed;
                }
            }

            long host = ready.Where(c => Where(c) == Place.HostMemory).Sum(c => c.ByteSize);
            foreach (var oldest in ready.Where(c => Where(c) == Place.HostMemory).OrderBy(c => c.Sequence))
            {
                if (host <= HostBudgetBytes) break;
                long freed = oldest.SpillToDisk(Path.Combine(SpillDirectory, $"spill-{oldest.Sequence:D8}"));
                if (freed > 0) _spillsToDisk++;
                host -= freed;
            }
        }
    }

    private enum Place { Accelerator, HostMemory, Disk }

    private static Place Where(MemoryCheckpoint c) => c.Location switch
    {
        MemoryLocation.Device when c.HomeDevice is { type: not TorchSharp.DeviceType.CPU } => Place.Accelerator,
        MemoryLocation.Disk => Place.Disk,
        _ => Place.HostMemory,
    };
}
