using TorchTrials.Gpu.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Checkpoints;

/// <summary>Where the bytes of a memory checkpoint are right now.</summary>
public enum MemoryLocation
{
    /// <summary>On the device it was captured on (the hot path: restore is a device-to-device copy).</summary>
    Device,

    /// <summary>Spilled to host memory.</summary>
    Host,

    /// <summary>Spilled to a safetensors file.</summary>
    Disk,

    /// <summary>Held by another process (a cluster node, on its device): loading it here fetches the state from there.</summary>
    Remote,
}

/// <summary>The state of a memory checkpoint another process holds (a cluster node): fetched on load, released on delete.</summary>
public interface IRemoteCheckpointState
{
    /// <summary>A copy of the state on <paramref name="device"/> (the caller owns it).</summary>
    TrainableState Load(Device device);

    /// <summary>Lets the holder free the state.</summary>
    void Release();
}

/// <summary>
/// An in-memory checkpoint: tensor clones of the trainable's state on its own device, taken on the trial's own
/// thread (and CUDA stream). It may be created before the state exists (a save queued behind training on the
/// trial's thread) and completed later. A <see cref="MemoryCheckpointStore"/> may move it to host memory or
/// disk when its device budget is exceeded; restoring is transparent to where it is.
/// </summary>
public sealed class MemoryCheckpoint : Checkpoint
{
    private readonly object _gate = new();
    private readonly ManualResetEventSlim _ready = new(false);
    private TrainableState? _state;
    private IRemoteCheckpointState? _remote;
    private string? _spillPath;
    private Exception? _error;
    private bool _deleted;
    private bool _deleteRequested;
    private int _leases;

    private MemoryCheckpoint(TrialResult? result) : base(result) { }

    public override CheckpointStorage Storage => CheckpointStorage.Memory;

    /// <summary>Sequence number given by the store; older checkpoints spill first.</summary>
    internal long Sequence { get; set; }

    internal MemoryCheckpointStore? Store { get; set; }

    /// <summary>The device the state was captured on.</summary>
    public Device? HomeDevice { get; private set; }

    public MemoryLocation Location { get; private set; }

    /// <summary>The CUDA stream the state was captured on; another thread must wait for it before touching the tensors.</summary>
    public CudaStream? ProducerStream { get; set; }

    public long ByteSize { get; private set; }

    public bool IsReady => _ready.IsSet;

    /// <summary>A checkpoint whose state will be supplied by <see cref="Complete"/>.</summary>
    public static MemoryCheckpoint Pending(TrialResult? result) => new(result);

    /// <summary>A checkpoint holding <paramref name="state"/> (ownership passes to the checkpoint).</summary>
    public static MemoryCheckpoint FromState(TrainableState state, TrialResult? result)
    {
        var checkpoint = new MemoryCheckpoint(result);
        checkpoint.Complete(state);
        return checkpoint;
    }

    public void Complete(TrainableState state)
    {
        lock (_gate)
        {
            if (_deleted)
            {
                state.Dispose();
            }
            else
            {
                _state = state;
                HomeDevice = state.Device;
                ByteSize = state.ByteSize;
                Location = MemoryLocation.Device;
            }
        }
        _ready.Set();
        Store?.OnCompleted(this);
    }

    /// <summary>Completes the checkpoint with a state that stays where it was taken (<see cref="MemoryLocation.Remote"/>).</summary>
    public void CompleteRemote(long byteSize, IRemoteCheckpointState remote)
    {
        bool release = false;
        lock (_gate)
        {
            if (_deleted)
            {
                release = true;
            }
            else
            {
                _remote = remote;
                ByteSize = byteSize;
                Location = MemoryLocation.Remote;
            }
        }
        if (release) remote.Release();
        _ready.Set();
        Store?.OnCompleted(this);
    }

    /// <summary>The holder of a <see cref="MemoryLocation.Remote"/> checkpoint's state; null for one held here.</summary>
    public IRemoteCheckpointState? RemoteState
    {
        get { lock (_gate) return _remote; }
    }

    public void Fail(Exception error)
    {
        lock (_gate) _error = error;
        _ready.Set();
    }

    /// <summary>
    /// Runs <paramref name="use"/> with the checkpoint's state on <paramref name="device"/>. When the state is
    /// already resident there, it is lent without any copy; otherwise a temporary copy is made. The state is
    /// valid only during the call.
    /// </summary>
    public void WithState(Device device, Action<TrainableState> use, CancellationToken cancel = default)
    {
        _ready.Wait(cancel);
        lock (_gate)
        {
            if (_error is not null) throw new InvalidOperationException("the checkpoint's save failed", _error);
            ObjectDisposedException.ThrowIf(_deleted, this);
            if (_state is not null && Location == MemoryLocation.Device && SameDevice(_state.Device, device))
            {
                use(_state);
                return;
            }
            using var temporary = LoadLocked(device);
            use(temporary);
        }
    }

    public override TrainableState LoadState(Device device)
    {
        _ready.Wait();
        lock (_gate)
        {
            if (_error is not null) throw new InvalidOperationException("the checkpoint's save failed", _error);
            ObjectDisposedException.ThrowIf(_deleted, this);
            return LoadLocked(device);
        }
    }

    private TrainableState LoadLocked(Device device)
    {
        if (_state is not null) return _state.CopyTo(device);
        if (_remote is not null) return _remote.Load(device);
        if (_spillPath is not null)
        {
            var (tensors, _) = SafeTensors.Read(Path.Combine(_spillPath, PersistentCheckpoint.TensorFile), device);
            var metadata = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(_spillPath, PersistentCheckpoint.MetadataFile)))!["metadata"]!.AsObject();
            return new TrainableState(tensors, (System.Text.Json.Nodes.JsonObject)metadata.DeepClone());
        }
        throw new InvalidOperationException("the checkpoint holds no state");
    }

    /// <summary>Moves a device-resident state to host memory; returns the bytes freed on the device.</summary>
    internal long SpillToHost()
    {
        lock (_gate)
        {
            if (_deleted || _state is null || Location != MemoryLocation.Device || _state.Device.type == DeviceType.CPU) return 0;
            var host = _state.CopyTo(CPU);
            _state.Dispose();
            _state = host;
            Location = MemoryLocation.Host;
            return ByteSize;
        }
    }

    /// <summary>Writes a resident state to <paramref name="directory"/> and frees the memory; returns the bytes freed.</summary>
    internal long SpillToDisk(string directory)
    {
        lock (_gate)
        {
            if (_deleted || _state is null) return 0;
            PersistentCheckpoint.Write(directory, _state, Result);
            _state.Dispose();
            _state = null;
            _spillPath = directory;
            Location = MemoryLocation.Disk;
            return ByteSize;
        }
    }

    /// <summary>Keeps the state alive until the lease is disposed, even if the owner deletes the checkpoint meanwhile.</summary>
    public IDisposable Retain()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_deleted, this);
            _leases++;
        }
        return new Lease(this);
    }

    private void ReleaseLease()
    {
        bool delete;
        lock (_gate)
        {
            _leases--;
            delete = _leases == 0 && _deleteRequested;
        }
        if (delete) Delete();
    }

    private sealed class Lease(MemoryCheckpoint owner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) owner.ReleaseLease();
        }
    }

    public override void Delete()
    {
        lock (_gate)
        {
            if (_deleted) return;
            if (_leases > 0)
            {
                _deleteRequested = true;
                return;
            }
            _deleted = true;
            _state?.Dispose();
            _state = null;
            _remote?.Release();
            _remote = null;
            if (_spillPath is not null && Directory.Exists(_spillPath)) Directory.Delete(_spillPath, recursive: true);
        }
        Store?.OnDeleted(this);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Delete();
    }

    private static bool SameDevice(Device a, Device b) => a.type == b.type && (a.type == DeviceType.CPU || a.index == b.index);

    public override string ToString() => $"memory checkpoint @{TrainingIteration} ({Location}, {ByteSize} bytes)";
}
