using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Cluster;

/// <summary>
/// A worker machine's side of the cluster executor: the machine's slot allocator and an in-process
/// <see cref="ConcurrentTrialExecutor"/> (or, for a sweep that fuses, a <see cref="FusedTrialExecutor"/> whose arrays
/// hold one slot of this machine each) driven from one thread of its own, as the controller drives an executor in one
/// process. The node grain hands it operations (in the controller's order) and takes its events in batches. Memory
/// checkpoints stay here, on the device they were taken on; persistent ones travel back to the controller as files.
/// <para>
/// Each start runs a replica <see cref="Trial"/> (id, config, resources of the controller's trial), whose events carry
/// the controller's incarnation. Trainable reuse across trials is off on nodes (as for fused arrays): every start builds
/// its trainable.
/// </para>
/// </summary>
public sealed class ClusterNode : IDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(2);

    /// <summary>How long the loop of a node without trials sleeps between looks at its lease (a command wakes it at once).</summary>
    private static readonly TimeSpan IdleWait = TimeSpan.FromMilliseconds(100);
    private readonly DeviceSlotAllocator _allocator;
    private readonly ExecutorOptions _options;
    private readonly int? _threadsPerTrial;
    private ITrialExecutor _executor;
    private FusionOptions? _fusion;
    private readonly TrainableRegistry _registry;
    private readonly ILogger _logger;
    private readonly string _scratch;
    private readonly ConcurrentQueue<Action> _commands = new();
    private readonly Lock _eventsGate = new();
    private readonly List<NodeEvent> _events = new();
    private readonly SemaphoreSlim _eventsReady = new(0);
    private readonly SemaphoreSlim _wake = new(0);
    private long _iterations;
    private readonly Dictionary<string, Replica> _replicas = new(StringComparer.Ordinal);
    private readonly Dictionary<Trial, Replica> _byTrial = new();
    private readonly Dictionary<long, MemoryCheckpoint> _memory = new();
    private readonly List<Replica> _stopping = new();
    private readonly Thread _thread;
    private readonly TimeSpan _controllerLease;
    private long _lastHeard = Environment.TickCount64;
    private long _orphanEpoch;
    private volatile bool _leaseExpired;
    private volatile bool _refusePolls;
    private volatile bool _disposed;

    /// <param name="controllerLease">
    /// How long the node keeps running trials while no controller polls it: after that their controller is taken as dead
    /// (killed, its machine lost) and they are stopped, so a controller that resumes the sweep finds the slots free.
    /// Ten seconds when null; controllers poll every half second.
    /// </param>
    public ClusterNode(DeviceSlotAllocator allocator, TrainableRegistry registry, string? name = null, ExecutorOptions? options = null,
        int? threadsPerTrial = null, ILogger? logger = null, TimeSpan? controllerLease = null)
    {
        _registry = registry;
        _controllerLease = controllerLease ?? TimeSpan.FromSeconds(10);
        _logger = logger ?? NullLogger.Instance;
        Name = name ?? Environment.MachineName;
        _scratch = Path.Combine(Path.GetTempPath(), "torchtrials-node-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        options = (options ?? new ExecutorOptions()) with { ReuseTrainables = false, SpillDirectory = options?.SpillDirectory ?? Path.Combine(_scratch, "spill") };
        _allocator = allocator;
        _options = options;
        _threadsPerTrial = threadsPerTrial;
        _executor = Build(null);
        _thread = new Thread(Loop) { IsBackground = true, Name = "torchtrials-node" };
        _thread.Start();
    }

    public string Name { get; }

    public DeviceSlotAllocator Allocator => _allocator;

    /// <summary>Fused arrays holding a slot on this node now.</summary>
    public int ArrayCount => _executor is FusedTrialExecutor fused ? fused.ArrayCount : 0;

    /// <summary>
    /// The executor for a sweep that fuses (<paramref name="fusion"/>) or not (null): a <see cref="FusedTrialExecutor"/>
    /// with no pending trials of its own (the controller chooses what starts; an array gives its slot back once its last
    /// lane leaves), or the <see cref="ConcurrentTrialExecutor"/>.
    /// </summary>
    private ITrialExecutor Build(FusionOptions? fusion) => fusion is null
        ? new ConcurrentTrialExecutor(_allocator, _registry, _options, threadsPerTrial: _threadsPerTrial, logger: _logger)
        : new FusedTrialExecutor(_allocator, _registry, fusion, _options, threadsPerTrial: _threadsPerTrial, logger: _logger);

    /// <summary>Switches to the executor the start asks for, when nothing of another sweep's setting is left here.</summary>
    private string? UseFusion(int maxMembers)
    {
        var wanted = maxMembers > 0 ? new FusionOptions { Fuse = FuseMode.Auto, MaxMembers = maxMembers } : null;
        if (Equals(wanted, _fusion)) return null;
        if (_replicas.Count > 0 || _stopping.Count > 0 || _memory.Count > 0)
            return $"node {Name} is running trials {(_fusion is null ? "unfused" : $"fused {_fusion.MaxMembers} to an array")}; it takes trials of another fusion setting once they are done";
        _executor.Dispose();
        _executor = Build(wanted);
        _fusion = wanted;
        return null;
    }

    /// <summary>Trials running on this node now.</summary>
    public int RunningTrials
    {
        get { lock (_eventsGate) return _replicas.Count; }
    }

    public NodeInfo Describe(string key)
    {
        var inventory = Allocator.Inventory;
        return new NodeInfo
        {
            Key = key,
            Name = Name,
            Cpus = inventory.CpuCores,
            HostMemoryBytes = inventory.HostMemoryBytes,
            GpuNames = inventory.Gpus.Select(g => g.Name).ToArray(),
            GpuMemoryBytes = inventory.Gpus.Select(g => g.TotalMemoryBytes).ToArray(),
            Custom = inventory.Custom.ToDictionary(kv => kv.Key, kv => kv.Value.ToDouble()),
        };
    }

    public Task Apply(NodeOp[] ops)
    {
        foreach (var op in ops) Post(() => Run(op));
        return Task.CompletedTask;
    }

    public Task<StartReply> Start(NodeOp op) => Call(() => StartNow(op));

    public Task<WireCheckpoint> Fetch(long checkpointId) => Call(() =>
    {
        if (!_memory.TryGetValue(checkpointId, out var checkpoint))
            throw new InvalidOperationException($"node {Name} holds no memory checkpoint {checkpointId}");
        using var state = checkpoint.LoadState(TorchSharp.torch.CPU);
        return CheckpointFiles.FromState(state, checkpoint.Result, _scratch);
    });

    /// <summary>
    /// Stops every trial and drops every memory checkpoint (the controller finished or was lost); completes once their
    /// slots are free (or after <paramref name="patience"/>).
    /// </summary>
    public async Task Release(TimeSpan? patience = null)
    {
        var slots = await Call(() =>
        {
            StopAll();
            return _stopping.Select(r => r.Slot).OfType<DeviceSlot>().ToList();
        }).ConfigureAwait(false);
        var deadline = DateTime.UtcNow + (patience ?? TimeSpan.FromSeconds(30));
        while (slots.Any(s => !s.Released) && DateTime.UtcNow < deadline)
            await Task.Delay(5).ConfigureAwait(false);
    }

    private void StopAll()
    {
        foreach (var replica in _replicas.Values.ToList()) StopReplica(replica, error: false);
        foreach (var checkpoint in _memory.Values) checkpoint.Delete();
        _memory.Clear();
    }

    public async Task<NodeEventBatch> Poll(int waitMilliseconds)
    {
        if (_refusePolls) throw new IOException($"node {Name} refuses polls (test)");
        Interlocked.Exchange(ref _lastHeard, Environment.TickCount64);
        lock (_eventsGate)
            if (_events.Count > 0) return Take();
        await _eventsReady.WaitAsync(waitMilliseconds).ConfigureAwait(false);
        // Let a burst of results gather into one batch.
        await Task.Delay(1).ConfigureAwait(false);
        lock (_eventsGate) return Take();
    }

    private NodeEventBatch Take()
    {
        var batch = new NodeEventBatch { Events = _events.ToArray(), OrphanEpoch = _orphanEpoch };
        _events.Clear();
        while (_eventsReady.CurrentCount > 0) _eventsReady.Wait(0);
        return batch;
    }

    private void Emit(NodeEvent e)
    {
        lock (_eventsGate) _events.Add(e);
        if (_eventsReady.CurrentCount == 0) _eventsReady.Release();
    }

    private Task<T> Call<T>(Func<T> body)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                done.SetResult(body());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        return done.Task;
    }

    private void Post(Action command)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _commands.Enqueue(command);
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    /// <summary>Turns of the node's loop so far (tests: an idle node must not spin).</summary>
    internal long LoopIterations => Interlocked.Read(ref _iterations);

    private void Loop()
    {
        while (!_disposed)
        {
            try
            {
                while (_commands.TryDequeue(out var command)) command();
                _executor.Dispatch();
                var e = _executor.NextEvent(_commands.IsEmpty ? Tick : TimeSpan.Zero);
                while (e is not null)
                {
                    Forward(e);
                    e = _executor.NextEvent(TimeSpan.Zero);
                }
                foreach (var lost in _executor.TakeLostTrials())
                    if (_byTrial.TryGetValue(lost, out var replica))
                        Emit(new NodeEvent { Kind = NodeEventKind.Failed, TrialId = replica.Trial.Id, Incarnation = replica.Incarnation, Error = $"node {Name} lost the trial's device", DeviceLost = true });
                FreedSlots();
                StopOrphans();
                Interlocked.Increment(ref _iterations);
                // Nothing running: the executor's wait returns at once, so without this a worker with no trials spun a
                // whole core (seen at 100% CPU on an idle `torchtrials worker`).
                if (!_executor.HasWork && _commands.IsEmpty) _wake.Wait(IdleWait);
            }
            catch (Exception e) when (!_disposed)
            {
                _logger.LogError(e, "cluster node {Node}: the node loop failed", Name);
            }
        }
    }

    /// <summary>Stops the trials of a controller that stopped polling (see the constructor's controllerLease).</summary>
    private void StopOrphans()
    {
        if (_replicas.Count == 0 && _memory.Count == 0) return;
        long silent = Environment.TickCount64 - Interlocked.Read(ref _lastHeard);
        if (silent < _controllerLease.TotalMilliseconds && !_leaseExpired) return;
        _leaseExpired = false;
        _logger.LogWarning("cluster node {Node}: no controller for {Seconds:0} s; stopping its {Count} trials", Name, silent / 1000.0, _replicas.Count);
        StopAll();
        lock (_eventsGate)
        {
            _events.Clear();
            // Polls read the epoch with the events: a controller that comes back learns its trials here were stopped.
            _orphanEpoch++;
        }
    }

    /// <summary>Acts as if no poll had come for the controller lease: the next loop stops every trial (tests).</summary>
    internal void ExpireControllerLease() => _leaseExpired = true;

    /// <summary>Every poll fails from now on while the silo stays in the membership: a worker that is not reachable (tests).</summary>
    internal void RefusePolls() => _refusePolls = true;

    private void FreedSlots()
    {
        for (int i = _stopping.Count - 1; i >= 0; i--)
        {
            var replica = _stopping[i];
            if (replica.Slot is { Released: false }) continue;
            _stopping.RemoveAt(i);
            _byTrial.Remove(replica.Trial);
            Emit(new NodeEvent { Kind = NodeEventKind.SlotFreed, TrialId = replica.Trial.Id, Incarnation = replica.Incarnation });
        }
    }

    private void Forward(ExecutorEvent e)
    {
        // A stopped run's events are of no use to anyone: its controller ignores them, and one that was resumed after a
        // crash numbers its incarnations afresh, so they could pass for its new run's.
        if (!_byTrial.TryGetValue(e.Trial, out var replica) || !_replicas.TryGetValue(replica.Trial.Id, out var live) || live != replica) return;
        var id = replica.Trial.Id;
        switch (e)
        {
            case ResultEvent r:
                Emit(new NodeEvent
                {
                    Kind = NodeEventKind.Results, TrialId = id, Incarnation = replica.Incarnation, EndOfTraining = r.EndOfTraining,
                    Results = r.Results.Select(x => ResultJson.Serialize(x)).ToArray(),
                });
                break;
            case SaveEvent s:
                Emit(SavedToDisk(replica, s.Checkpoint));
                break;
            case RestoreEvent:
                Emit(new NodeEvent { Kind = NodeEventKind.Restored, TrialId = id, Incarnation = replica.Incarnation });
                break;
            case FailureEvent f:
                Emit(new NodeEvent
                {
                    Kind = NodeEventKind.Failed, TrialId = id, Incarnation = replica.Incarnation, Error = f.Error.Message,
                    ErrorType = f.Error.GetType().FullName, DeviceLost = f.DeviceLost,
                });
                break;
        }
    }

    private NodeEvent SavedToDisk(Replica replica, PersistentCheckpoint checkpoint)
    {
        try
        {
            var files = CheckpointFiles.Read(checkpoint.Directory, persistent: true);
            return new NodeEvent
            {
                Kind = NodeEventKind.SavedToDisk, TrialId = replica.Trial.Id, Incarnation = replica.Incarnation,
                Tensors = files.Tensors, MetadataJson = files.MetadataJson,
            };
        }
        finally
        {
            checkpoint.Delete();
        }
    }

    private StartReply StartNow(NodeOp op)
    {
        Interlocked.Exchange(ref _lastHeard, Environment.TickCount64);
        if (_replicas.TryGetValue(op.TrialId, out var stale))
        {
            // The controller starts a trial it believes stopped: this run of it belongs to a controller that died (and
            // was resumed) before this node noticed. Stop it; the slot is free once it has stopped.
            _logger.LogWarning("cluster node {Node}: trial {TrialId} started again by its controller; stopping the run it left here", Name, op.TrialId);
            StopReplica(stale, error: false);
            return new StartReply { Outcome = StartOutcome.NoSlot, Message = $"node {Name}: trial {op.TrialId} is stopping its previous run here" };
        }
        if (UseFusion(op.MaxMembers) is { } busy) return new StartReply { Outcome = StartOutcome.NoSlot, Message = busy };
        var trial = new Trial(op.Trainable!, TrialConfig.FromJson(op.ConfigJson ?? "{}"), op.TrialId,
            Resources.FromJson(op.ResourcesJson!), experimentTag: op.Tag ?? "");
        Checkpoint? checkpoint;
        try
        {
            checkpoint = Restorable(op);
        }
        catch (Exception e)
        {
            checkpoint = MemoryCheckpoint.Pending(null);
            ((MemoryCheckpoint)checkpoint).Fail(e);
        }
        var replica = new Replica(trial, op.Incarnation);
        bool started;
        try
        {
            started = _executor.Start(trial, checkpoint, (t, slot) =>
            {
                replica.Slot = slot;
                return new TrainableContext { TrialId = t.Id, ExperimentTag = t.ExperimentTag, Slot = slot, Seed = op.Seed, Logger = _logger };
            });
        }
        catch (ResourceRequestException e)
        {
            return new StartReply { Outcome = StartOutcome.ResourceRequest, Message = e.Message };
        }
        catch (Exception e) when (e is TrialStartException or InvalidOperationException or KeyNotFoundException)
        {
            return new StartReply { Outcome = StartOutcome.CannotStart, Message = e.Message };
        }
        if (!started) return new StartReply { Outcome = StartOutcome.NoSlot, Message = $"node {Name}: {Allocator.DescribeUsage()}" };
        _replicas[op.TrialId] = replica;
        _byTrial[trial] = replica;
        long epoch;
        lock (_eventsGate) epoch = _orphanEpoch;
        return new StartReply { Outcome = StartOutcome.Started, Restoring = trial.IsRestoring, OrphanEpoch = epoch, Lane = trial.Lane };
    }

    /// <summary>The checkpoint a start or exploit restores from, as this node holds it.</summary>
    private Checkpoint? Restorable(NodeOp op) => op.Checkpoint is { } wire ? Local(wire) : null;

    private Checkpoint Local(WireCheckpoint wire)
    {
        if (wire.Failed is { } why) throw new InvalidOperationException(why);
        if (wire.NodeKey is not null && wire.Tensors is null)
        {
            if (!_memory.TryGetValue(wire.Id, out var held))
                throw new InvalidOperationException($"node {Name} holds no memory checkpoint {wire.Id}");
            return held;
        }
        var folder = Path.Combine(_scratch, "in-" + Guid.NewGuid().ToString("N"));
        var persistent = CheckpointFiles.Write(wire, folder);
        if (wire.Persistent) return persistent;
        // A memory checkpoint that lived elsewhere (the controller, another node): on this node's device from now on.
        try
        {
            var state = persistent.LoadState(TorchSharp.torch.CPU);
            return MemoryCheckpoint.FromState(state, persistent.Result);
        }
        finally
        {
            persistent.Delete();
        }
    }

    private void Run(NodeOp op)
    {
        if (op.Kind == NodeOpKind.DeleteMemory)
        {
            if (_memory.Remove(op.CheckpointId, out var gone)) gone.Delete();
            return;
        }
        if (!_replicas.TryGetValue(op.TrialId, out var replica) || replica.Incarnation != op.Incarnation) return;
        var trial = replica.Trial;
        try
        {
            switch (op.Kind)
            {
                case NodeOpKind.Continue:
                    _executor.ContinueTraining(trial, op.Steps);
                    break;
                case NodeOpKind.SaveToMemory:
                    SaveToMemory(replica, op);
                    break;
                case NodeOpKind.SaveToDisk:
                    trial.LastResult = op.ResultJson is { } json ? ResultJson.Parse(json) : null;
                    _executor.SaveToDisk(trial, Path.Combine(_scratch, "save-" + Guid.NewGuid().ToString("N")));
                    break;
                case NodeOpKind.Exploit:
                    Exploit(replica, op);
                    break;
                case NodeOpKind.Stop:
                    StopReplica(replica, op.Error);
                    break;
            }
        }
        catch (Exception e)
        {
            Emit(new NodeEvent { Kind = NodeEventKind.Failed, TrialId = trial.Id, Incarnation = replica.Incarnation, Error = e.Message, ErrorType = e.GetType().FullName });
        }
    }

    private void SaveToMemory(Replica replica, NodeOp op)
    {
        var result = op.ResultJson is { } json ? ResultJson.Parse(json) : null;
        var checkpoint = _executor.SaveToMemory(replica.Trial, result);
        _memory[op.CheckpointId] = checkpoint;
        var id = op.CheckpointId;
        var trialId = replica.Trial.Id;
        var incarnation = replica.Incarnation;
        // Completed on the trial's thread: report it once it is, without holding this loop.
        _ = Task.Run(() =>
        {
            try
            {
                checkpoint.WithState(TorchSharp.torch.CPU, _ => { });
                Emit(new NodeEvent { Kind = NodeEventKind.SavedToMemory, TrialId = trialId, Incarnation = incarnation, CheckpointId = id, ByteSize = checkpoint.ByteSize });
            }
            catch (Exception e)
            {
                Emit(new NodeEvent { Kind = NodeEventKind.MemorySaveFailed, TrialId = trialId, Incarnation = incarnation, CheckpointId = id, Error = e.Message });
            }
        });
    }

    private void Exploit(Replica replica, NodeOp op)
    {
        var donor = Local(op.Checkpoint ?? throw new InvalidDataException("an exploit needs the donor's checkpoint"));
        _executor.Exploit(replica.Trial, donor, TrialConfig.FromJson(op.ConfigJson ?? "{}"));
        // A donor that came over the wire is this exploit's alone. A memory one is deleted now (the delete waits for the
        // lease the recipient's thread holds while it loads it); a persistent one's folder at the recipient's next
        // exploit or stop.
        if (op.Checkpoint.NodeKey is not null && op.Checkpoint.Tensors is null) return;
        if (donor is MemoryCheckpoint copied) copied.Delete();
        else
        {
            replica.DropTransient();
            replica.Transient = donor;
        }
    }

    private void StopReplica(Replica replica, bool error)
    {
        _executor.Stop(replica.Trial, error);
        replica.DropTransient();
        _replicas.Remove(replica.Trial.Id);
        _stopping.Add(replica);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _wake.Release();
        _thread.Join(TimeSpan.FromSeconds(10));
        _executor.Dispose();
        foreach (var checkpoint in _memory.Values) checkpoint.Delete();
        _memory.Clear();
        try
        {
            if (Directory.Exists(_scratch)) Directory.Delete(_scratch, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class Replica(Trial trial, int incarnation)
    {
        public Trial Trial { get; } = trial;

        public int Incarnation { get; } = incarnation;

        public DeviceSlot? Slot { get; set; }

        public Checkpoint? Transient { get; set; }

        public void DropTransient()
        {
            Transient?.Delete();
            Transient = null;
        }
    }
}
