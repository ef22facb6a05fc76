using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Cluster;

/// <summary>
/// The executor contract over a cluster of worker machines (issue 14): trials run on the node grains of Orleans silos
/// (<see cref="INodeGrain"/>), while the controller, its searcher, schedulers, store and loggers stay in this process,
/// an Orleans client. Ray's equivalent is the RayTrialExecutor over a Ray cluster: a trial is placed on a node with
/// free resources, its operations are forwarded there and its results stream back.
/// <para>
/// Placement: the controller keeps a mirror <see cref="DeviceSlotAllocator"/> of each node's inventory and places a
/// trial first-fit in node order, so fractional requests pack onto one node and a request is never split across
/// nodes; the node's own allocator has the last word (a start it refuses is a start that found no slot). A mirror
/// slot is freed when the node says the trial's slot is, so <see cref="HasResourcesFor"/> never promises a slot that
/// is still in use.
/// </para>
/// <para>
/// Order and batching: operations are queued per node and sent in order, one Apply call per node per controller step
/// (and before each Start, which waits for the node's answer). Events come back by long polling each node, many per
/// batch. Memory checkpoints stay on their node (<see cref="MemoryLocation.Remote"/>); persistent saves come back as
/// the checkpoint's files and are written into the directory the controller asked for; a trial restarted elsewhere
/// from a memory checkpoint, or exploiting one held on another node, moves its safetensors bytes through the controller.
/// </para>
/// <para>
/// Membership: nodes are the active silos Orleans' membership lists (<see cref="IManagementGrain"/>), looked up every
/// <see cref="ClusterExecutorOptions.MembershipInterval"/>: a silo that joins receives trials; one that dies loses its
/// trials, which <see cref="TakeLostTrials"/> hands to the controller's failure recovery (requeued, restored from their
/// last persistent checkpoint, as in Ray's node-removal recovery). Trainable reuse is off across the cluster.
/// </para>
/// </summary>
public sealed class ClusterTrialExecutor : ITrialExecutor
{
    private readonly IClusterClient _client;
    private readonly TrainableRegistry _registry;
    private readonly ClusterExecutorOptions _options;
    private readonly FusionOptions? _fusion;
    private readonly ILogger _logger;
    private readonly string _scratch;
    private readonly Dictionary<string, Node> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<Trial, Run> _runs = new();
    private readonly ConcurrentDictionary<string, Run> _runsById = new(StringComparer.Ordinal);
    private readonly List<Run> _releasing = new();
    private readonly IncarnationCounter _incarnations = new();
    private readonly ConcurrentQueue<(Node Node, NodeEvent Event)> _incoming = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly ConcurrentQueue<ExecutorEvent> _events = new();
    private readonly ConcurrentDictionary<long, RemoteMemory> _memory = new();
    private readonly List<Trial> _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<NodeInfo> _joined = new();
    private readonly ConcurrentQueue<(Node Node, string Why)> _unreachable = new();
    private readonly ConcurrentQueue<(Node Node, long Epoch)> _orphaned = new();
    private volatile HashSet<string>? _active;
    private readonly Task _membership;
    private long _nextCheckpoint;
    private bool _slotFreed;
    private bool _disposed;

    /// <param name="fusion">
    /// Fusion of the sweep (<see cref="ExecutorSetup.Fusion"/>), null when it does not fuse: trials of one fusion key share
    /// an array on a node, up to <see cref="FusionOptions.MaxMembers"/> lanes on one slot of that node.
    /// </param>
    public ClusterTrialExecutor(IClusterClient client, TrainableRegistry registry, ExecutorOptions? options = null,
        ClusterExecutorOptions? clusterOptions = null, ILogger? logger = null, FusionOptions? fusion = null)
    {
        _client = client;
        _registry = registry;
        _fusion = fusion is { Fuse: FuseMode.Auto } ? fusion : null;
        _options = clusterOptions ?? new ClusterExecutorOptions();
        _logger = logger ?? NullLogger.Instance;
        _scratch = Path.Combine(options?.SpillDirectory ?? Path.GetTempPath(), "cluster-" + Guid.NewGuid().ToString("N")[..8]);
        CheckpointStore = ExecutorCheckpointStore.Create(options ?? new ExecutorOptions());
        _membership = Task.Run(WatchMembership);
        WaitForNodes();
    }

    /// <summary>
    /// The mirror allocator of the largest node (by CPUs, then GPUs): what the controller checks a request against
    /// before the first start. A request that fits no single node is refused at start.
    /// </summary>
    public DeviceSlotAllocator Allocator
    {
        get
        {
            Apply();
            return _nodes.Values.Where(n => !n.Lost).OrderByDescending(n => n.Mirror.Inventory.CpuCores).ThenByDescending(n => n.Mirror.Inventory.Gpus.Length)
                .Select(n => n.Mirror).FirstOrDefault() ?? throw new InvalidOperationException("the cluster has no worker");
        }
    }

    public MemoryCheckpointStore CheckpointStore { get; }

    /// <summary>Every worker's usage summed, e.g. "Resources requested: 3/4 CPUs, 0/0 GPUs on 2 workers".</summary>
    public string DescribeUsage()
    {
        Apply();
        var live = _nodes.Values.Where(n => !n.Lost).Select(n => n.Mirror.Committed).ToList();
        if (live.Count == 0) return "Resources requested: no worker has joined yet";
        var cpus = live.Aggregate(ResourceAmount.Zero, (sum, u) => sum + u.CpuTotal);
        var gpus = live.Aggregate(ResourceAmount.Zero, (sum, u) => sum + u.GpuTotal);
        var cpuTotal = _nodes.Values.Where(n => !n.Lost).Sum(n => n.Mirror.Inventory.CpuCores);
        var gpuTotal = _nodes.Values.Where(n => !n.Lost).Sum(n => n.Mirror.Inventory.Gpus.Length);
        return string.Create(CultureInfo.InvariantCulture, $"Resources requested: {cpus}/{cpuTotal} CPUs, {gpus}/{gpuTotal} GPUs on {live.Count} worker{(live.Count == 1 ? "" : "s")}");
    }

    /// <summary>Disposed with the executor: the client host a factory connected for it.</summary>
    internal IDisposable? Owned { get; init; }

    /// <summary>The workers the controller places trials on now.</summary>
    public IReadOnlyList<NodeInfo> Nodes
    {
        get
        {
            Apply();
            return _nodes.Values.Where(n => !n.Lost).Select(n => n.Info).ToList();
        }
    }

    /// <summary>Events received from nodes so far (results count once each, batched).</summary>
    public long ResultsReceived { get; private set; }

    /// <summary>Event batches received from nodes so far.</summary>
    public long BatchesReceived => Interlocked.Read(ref _batches);

    private long _batches;

    public bool HasWork => _runs.Count > 0 || _releasing.Count > 0 || !_events.IsEmpty || !_incoming.IsEmpty;

    public bool HasResourcesFor(Trial trial)
    {
        Apply();
        if (KeyOf(trial) is { } key && _nodes.Values.Any(n => !n.Lost && n.FreeLane(key, _fusion!.MaxMembers) is not null)) return true;
        return _nodes.Values.Any(n => !n.Lost && n.Mirror.CanAllocate(trial.Resources));
    }

    /// <summary>
    /// The array key of a trial the sweep fuses (trainable, its <see cref="RegisteredTrainable.FusionKey"/> of the config,
    /// resources), as <see cref="FusedTrialExecutor"/> keys its arrays; null when it trains alone.
    /// </summary>
    private string? KeyOf(Trial trial)
    {
        if (_fusion is null || !_registry.TryGet(trial.TrainableName, out var entry) || entry.FusionKey?.Invoke(trial.Config) is not { } fusionKey)
            return null;
        return trial.TrainableName + "\n" + fusionKey + "\n" + trial.Resources.ToJson();
    }

    public bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_runs.ContainsKey(trial)) throw new InvalidOperationException($"trial {trial.Id} is already running");
        Apply();
        var live = _nodes.Values.Where(n => !n.Lost).OrderBy(n => n.Info.Key, StringComparer.Ordinal).ToList();
        if (live.Count == 0) return false;
        ResourceRequestException? never = null;
        int fits = 0;
        foreach (var node in live)
        {
            try
            {
                node.Mirror.Validate(trial.Resources);
                fits++;
            }
            catch (ResourceRequestException e)
            {
                never ??= e;
            }
        }
        if (fits == 0) throw never!;

        var key = KeyOf(trial);
        // A fused trial refills a free lane of an array of its key first (the fullest, as the node's executor picks),
        // then opens an array on a node with a free slot.
        var places = key is null
            ? live.Select(n => (Node: n, Array: (MirrorArray?)null))
            : live.Select(n => (Node: n, Array: n.FreeLane(key, _fusion!.MaxMembers))).Where(p => p.Array is not null)
                .OrderByDescending(p => p.Array!.Lanes.Count).Concat(live.Select(n => (Node: n, Array: (MirrorArray?)null)));
        foreach (var (node, array) in places.ToList())
        {
            var slot = array is null ? node.Mirror.TryAllocate(trial.Resources, trial.Id) : null;
            if (array is null && slot is null) continue;
            var context = contextFactory(trial, slot ?? array!.Slot!);
            int incarnation = _incarnations.Of(trial) + 1;
            StartReply reply;
            try
            {
                var op = new NodeOp
                {
                    Kind = NodeOpKind.Start, TrialId = trial.Id, Incarnation = incarnation, Trainable = trial.TrainableName,
                    ConfigJson = trial.Config.ToJsonObject().ToJsonString(), ResourcesJson = trial.Resources.ToJson(),
                    Tag = context.ExperimentTag, Seed = context.Seed, Checkpoint = checkpoint is null ? null : Wire(checkpoint, node),
                    MaxMembers = key is null ? 0 : _fusion!.MaxMembers,
                };
                node.Flush();
                reply = node.Call(g => g.Start(op));
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                if (slot is not null) node.Mirror.Release(slot);
                MarkLost(node, e.Message);
                continue;
            }
            catch
            {
                if (slot is not null) node.Mirror.Release(slot);
                throw;
            }
            switch (reply.Outcome)
            {
                case StartOutcome.Started:
                    _incarnations.Next(trial);
                    var lane = reply.Lane is { } name ? node.Lane(name, key!, slot, trial.Resources) : null;
                    var run = new Run(trial, node, (lane?.Slot ?? slot)!, incarnation, reply.OrphanEpoch) { Array = lane };
                    lane?.Lanes.Add(run);
                    _runs[trial] = run;
                    _runsById[trial.Id] = run;
                    node.Runs.Add(run);
                    trial.IsRestoring = reply.Restoring;
                    trial.Lane = reply.Lane is null ? null : node.Info.Name + "/" + reply.Lane;
                    _logger.LogDebug("cluster: trial {TrialId} (incarnation {Incarnation}) started on worker {Name}", trial.Id, incarnation, node.Info.Name);
                    return true;
                case StartOutcome.NoSlot:
                    if (slot is not null) node.Mirror.Release(slot);
                    _logger.LogDebug("cluster: worker {Name} had no slot for trial {TrialId}: {Message}", node.Info.Name, trial.Id, reply.Message);
                    continue;
                case StartOutcome.ResourceRequest:
                    if (slot is not null) node.Mirror.Release(slot);
                    throw new ResourceRequestException(reply.Message ?? "the request does not fit the node");
                default:
                    if (slot is not null) node.Mirror.Release(slot);
                    throw new TrialStartException(reply.Message ?? $"trial {trial.Id} could not start");
            }
        }
        return false;
    }

    public void ContinueTraining(Trial trial, int steps = 1)
    {
        var run = RunOf(trial);
        // As ConcurrentTrialExecutor: a grant lasts until the controller has taken its last result. The node's own
        // executor ends the grant as soon as it trains the last step, so asking it again before that batch arrived
        // here would start a second grant and train past a stop or checkpoint the controller has yet to see.
        if (run.TrainingGranted) return;
        run.TrainingGranted = true;
        run.Node.Queue(new NodeOp { Kind = NodeOpKind.Continue, TrialId = trial.Id, Incarnation = run.Incarnation, Steps = steps });
    }

    public MemoryCheckpoint SaveToMemory(Trial trial, TrialResult? result = null)
    {
        var run = RunOf(trial);
        var stamp = result ?? trial.LastResult;
        var checkpoint = MemoryCheckpoint.Pending(stamp);
        long id = Interlocked.Increment(ref _nextCheckpoint);
        _memory[id] = new RemoteMemory(this, run.Node, id, checkpoint);
        run.Node.Queue(new NodeOp
        {
            Kind = NodeOpKind.SaveToMemory, TrialId = trial.Id, Incarnation = run.Incarnation, CheckpointId = id,
            ResultJson = stamp is null ? null : ResultJson.Serialize(stamp),
        });
        return checkpoint;
    }

    public void SaveToDisk(Trial trial, string directory)
    {
        var run = RunOf(trial);
        run.DiskSaves.Enqueue(directory);
        // The node's replica of the trial never records results: the checkpoint's result (and so the iteration a
        // restart from it rolls the store back to) is the controller's.
        run.Node.Queue(new NodeOp
        {
            Kind = NodeOpKind.SaveToDisk, TrialId = trial.Id, Incarnation = run.Incarnation,
            ResultJson = trial.LastResult is { } last ? ResultJson.Serialize(last) : null,
        });
    }

    public void Exploit(Trial trial, Checkpoint donor, TrialConfig config)
    {
        var run = RunOf(trial);
        run.Node.Queue(new NodeOp
        {
            Kind = NodeOpKind.Exploit, TrialId = trial.Id, Incarnation = run.Incarnation, Checkpoint = Wire(donor, run.Node),
            ConfigJson = config.ToJsonObject().ToJsonString(),
        });
    }

    public void Stop(Trial trial, bool error)
    {
        if (!_runs.Remove(trial, out var run)) return;
        run.Stopped = true;
        _releasing.Add(run);
        LeaveLane(run);
        if (run.Node.Lost)
        {
            Released(run);
            return;
        }
        run.Node.Queue(new NodeOp { Kind = NodeOpKind.Stop, TrialId = trial.Id, Incarnation = run.Incarnation, Error = error });
    }

    public void Dispatch()
    {
        foreach (var node in _nodes.Values) node.Flush();
    }

    public ExecutorEvent? NextEvent(TimeSpan timeout)
    {
        Dispatch();
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            Apply();
            if (_events.TryDequeue(out var e))
            {
                // The grant ends when the controller takes its last result, not when the batch arrives: results queued
                // here ahead of it still make the controller ask to continue, and those asks must find the grant open.
                if (e is ResultEvent { EndOfTraining: true } or FailureEvent && _runs.TryGetValue(e.Trial, out var run) && run.Incarnation == e.Incarnation)
                    run.TrainingGranted = false;
                return e;
            }
            if (_slotFreed)
            {
                _slotFreed = false;
                return null;
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) return null;
            _signal.Wait(left < _options.MembershipInterval ? left : _options.MembershipInterval);
        }
    }

    public IReadOnlyList<Trial> TakeLostTrials()
    {
        Apply();
        var lost = _lost.ToList();
        _lost.Clear();
        return lost;
    }

    public int IncarnationOf(Trial trial) => _incarnations.Of(trial);

    private Run RunOf(Trial trial) =>
        _runs.TryGetValue(trial, out var run) ? run : throw new InvalidOperationException($"trial {trial.Id} is not running");

    /// <summary>Applies what arrived from the nodes and from membership, on the controller's thread.</summary>
    private void Apply()
    {
        while (_unreachable.TryDequeue(out var gone)) MarkLost(gone.Node, gone.Why);
        while (_orphaned.TryDequeue(out var orphaned)) Orphaned(orphaned.Node, orphaned.Epoch);
        while (_joined.TryDequeue(out var info))
        {
            if (_nodes.TryGetValue(info.Key, out var known) && !known.Lost) continue;
            var node = new Node(this, info);
            _nodes[info.Key] = node;
            node.StartPolling(_stop.Token);
            _logger.LogInformation("cluster: worker {Name} joined ({Inventory})", info.Name, node.Mirror.Inventory.Describe());
        }
        if (_active is { } active)
            foreach (var node in _nodes.Values)
                if (!node.Lost && !active.Contains(node.Info.Key)) MarkLost(node, "its silo left the cluster");
        while (_incoming.TryDequeue(out var item)) Handle(item.Node, item.Event);
    }

    private void Handle(Node node, NodeEvent e)
    {
        if (!_runsById.TryGetValue(e.TrialId, out var run) || run.Node != node || run.Incarnation != e.Incarnation)
        {
            // The slot of an incarnation already replaced (or of a lost node) needs no accounting here.
            return;
        }
        var trial = run.Trial;
        switch (e.Kind)
        {
            case NodeEventKind.Results:
                var results = e.Results.Select(ResultJson.Parse).ToList();
                ResultsReceived += results.Count;
                _events.Enqueue(new ResultEvent(trial, run.Incarnation, results) { EndOfTraining = e.EndOfTraining });
                break;
            case NodeEventKind.SavedToDisk:
                var directory = run.DiskSaves.TryDequeue(out var d) ? d : throw new InvalidOperationException($"trial {trial.Id}: a save nobody asked for");
                try
                {
                    var checkpoint = CheckpointFiles.Write(new WireCheckpoint { Tensors = e.Tensors, MetadataJson = e.MetadataJson }, directory);
                    _events.Enqueue(new SaveEvent(trial, run.Incarnation, checkpoint));
                }
                catch (Exception error) when (error is IOException or UnauthorizedAccessException or InvalidDataException)
                {
                    _events.Enqueue(new FailureEvent(trial, run.Incarnation, new IOException($"writing trial {trial.Id}'s checkpoint into {directory} failed: {error.Message}", error)));
                }
                break;
            case NodeEventKind.Restored:
                _events.Enqueue(new RestoreEvent(trial, run.Incarnation));
                break;
            case NodeEventKind.Failed:
                _events.Enqueue(new FailureEvent(trial, run.Incarnation, new NodeTrialException(node.Info.Name, e.Error ?? "the trial failed", e.ErrorType), e.DeviceLost));
                break;
            case NodeEventKind.SlotFreed:
                Released(run);
                break;
        }
    }

    private void Released(Run run)
    {
        if (!_releasing.Remove(run)) return;
        run.Node.Runs.Remove(run);
        if (run.Array is { } array)
        {
            // A lane's slot is its array's: free once the node closed the array (its last lane gone).
            array.ClosedOnNode = true;
            ReleaseIfClosed(array);
        }
        else if (!run.Node.Lost) run.Node.Mirror.Release(run.Slot);
        if (_runsById.TryGetValue(run.Trial.Id, out var current) && current == run) _runsById.TryRemove(run.Trial.Id, out _);
        _slotFreed = true;
    }

    private void MarkLost(Node node, string why)
    {
        if (node.Lost) return;
        node.Lost = true;
        _logger.LogWarning("cluster: worker {Name} lost ({Why}); its {Count} trials are requeued", node.Info.Name, why, node.Runs.Count(r => !r.Stopped));
        foreach (var run in node.Runs.ToList())
        {
            if (run.Stopped)
            {
                Released(run);
                continue;
            }
            _lost.Add(run.Trial);
        }
        FailMemoryOn(node, $"worker {node.Info.Name} that held the checkpoint was lost");
        node.StopPolling();
        _slotFreed = true;
    }

    /// <summary>
    /// The node stopped every trial it ran for us, as it does when no poll reaches it for its controller lease (a poll
    /// stuck behind a dead gateway is enough): the trials started before <paramref name="epoch"/> are gone from it, their
    /// memory checkpoints with them. They go to failure recovery as a lost node's do; the node stays.
    /// </summary>
    private void Orphaned(Node node, long epoch)
    {
        if (node.Lost) return;
        var gone = node.Runs.Where(r => r.OrphanEpoch < epoch).ToList();
        if (gone.Count == 0) return;
        _logger.LogWarning("cluster: worker {Name} stopped our {Count} trials (it heard no poll for its lease); they are requeued",
            node.Info.Name, gone.Count(r => !r.Stopped));
        foreach (var run in gone)
        {
            node.Runs.Remove(run);
            _releasing.Remove(run);
            if (run.Array is { } array)
            {
                LeaveLane(run);
                array.ClosedOnNode = true;
                ReleaseIfClosed(array);
            }
            else node.Mirror.Release(run.Slot);
            if (_runsById.TryGetValue(run.Trial.Id, out var current) && current == run) _runsById.TryRemove(run.Trial.Id, out _);
            if (run.Stopped) continue;
            _runs.Remove(run.Trial);
            run.Stopped = true;
            _lost.Add(run.Trial);
        }
        FailMemoryOn(node, $"worker {node.Info.Name} dropped the checkpoint when it stopped our trials");
        _slotFreed = true;
    }

    /// <summary>The run's lane is free for the next trial of its key (the node refills it as soon as it has stopped).</summary>
    private static void LeaveLane(Run run)
    {
        if (run.Array is not { } array || !array.Lanes.Remove(run)) return;
        ReleaseIfClosed(array);
    }

    /// <summary>An array without lanes that the node has closed gives its slot back to the mirror.</summary>
    private static void ReleaseIfClosed(MirrorArray array)
    {
        if (array.Lanes.Count > 0 || !array.ClosedOnNode || array.Released) return;
        array.Released = true;
        array.Node.Arrays.Remove(array.Id);
        if (!array.Node.Lost && array.Slot is not null) array.Node.Mirror.Release(array.Slot);
    }

    private void FailMemoryOn(Node node, string why)
    {
        foreach (var (id, memory) in _memory)
            if (memory.Node == node && _memory.TryRemove(id, out _))
                memory.Checkpoint.Fail(new InvalidOperationException(why));
    }

    /// <summary>A checkpoint as <paramref name="target"/> can restore it.</summary>
    private WireCheckpoint Wire(Checkpoint checkpoint, Node target)
    {
        switch (checkpoint)
        {
            case PersistentCheckpoint persistent:
                return CheckpointFiles.Read(persistent.Directory, persistent: true);
            case MemoryCheckpoint memory when memory.RemoteState is RemoteMemory remote && remote.Owner == this:
                if (remote.Node == target) return new WireCheckpoint { NodeKey = target.Info.Key, Id = remote.Id };
                return remote.Node.Call(g => g.Fetch(remote.Id));
            case MemoryCheckpoint memory:
                try
                {
                    using var state = memory.LoadState(CPU);
                    return CheckpointFiles.FromState(state, memory.Result, Directory.CreateDirectory(_scratch).FullName);
                }
                catch (Exception e)
                {
                    return new WireCheckpoint { Failed = e.Message };
                }
            default:
                throw new ArgumentException($"a cluster cannot move a {checkpoint.GetType().Name}", nameof(checkpoint));
        }
    }

    private void WaitForNodes()
    {
        var deadline = DateTime.UtcNow + _options.JoinTimeout;
        while (DateTime.UtcNow < deadline)
        {
            Apply();
            if (_nodes.Values.Any(n => !n.Lost)) return;
            if (_membership.IsFaulted) break;
            Thread.Sleep(50);
        }
        _stop.Cancel();
        var why = _membership.Exception?.GetBaseException().Message;
        throw new ClusterUnavailableException(why is null
            ? $"no worker joined the cluster within {_options.JoinTimeout.TotalSeconds:0} s: start one with `torchtrials worker --cluster <connection>`"
            : $"the cluster cannot be reached: {why}");
    }

    private async Task WatchMembership()
    {
        var management = _client.GetGrain<IManagementGrain>(0);
        var known = new HashSet<string>(StringComparer.Ordinal);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var hosts = await management.GetDetailedHosts(onlyActive: true).ConfigureAwait(false);
                var active = hosts.Where(h => h.Status == SiloStatus.Active).Select(h => h.SiloAddress.ToParsableString()).ToHashSet(StringComparer.Ordinal);
                foreach (var key in active)
                {
                    if (known.Contains(key)) continue;
                    try
                    {
                        var info = await _client.GetGrain<INodeGrain>(key).Describe().ConfigureAwait(false);
                        _joined.Enqueue(info);
                        known.Add(key);
                    }
                    catch (Exception e) when (!_stop.IsCancellationRequested)
                    {
                        _logger.LogDebug(e, "cluster: silo {Silo} has no node yet", key);
                    }
                }
                known.IntersectWith(active);
                _active = active;
                _signal.Release();
            }
            catch (Exception e) when (!_stop.IsCancellationRequested && e is not OperationCanceledException)
            {
                _logger.LogWarning("cluster: membership lookup failed: {Message}", e.Message);
            }
            try
            {
                await Task.Delay(_options.MembershipInterval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    internal static bool IsUnreachable(Exception e) =>
        e is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException
        || (e is OrleansException && e.Message.Contains("is not an active worker", StringComparison.Ordinal));

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var node in _nodes.Values.Where(n => !n.Lost))
        {
            try
            {
                node.Flush();
                node.Call(g => g.Release());
            }
            catch (Exception e)
            {
                _logger.LogDebug(e, "cluster: releasing worker {Name} failed", node.Info.Name);
            }
        }
        _stop.Cancel();
        foreach (var node in _nodes.Values) node.StopPolling();
        foreach (var memory in _memory.Values) memory.Checkpoint.Fail(new ObjectDisposedException(nameof(ClusterTrialExecutor)));
        _memory.Clear();
        Owned?.Dispose();
        try
        {
            if (Directory.Exists(_scratch)) Directory.Delete(_scratch, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class Run(Trial trial, Node node, DeviceSlot slot, int incarnation, long orphanEpoch)
    {
        public Trial Trial { get; } = trial;

        public Node Node { get; } = node;

        public DeviceSlot Slot { get; } = slot;

        public int Incarnation { get; } = incarnation;

        /// <summary>The fused array the run is a lane of, null when it trains alone.</summary>
        public MirrorArray? Array { get; init; }

        /// <summary>The node's orphan epoch when this run started there.</summary>
        public long OrphanEpoch { get; } = orphanEpoch;

        public bool Stopped { get; set; }

        /// <summary>Training asked of the node whose last result has not arrived yet.</summary>
        public bool TrainingGranted { get; set; }

        public Queue<string> DiskSaves { get; } = new();
    }

    /// <summary>A fused array on a node as the controller sees it: its key, the mirror slot it holds and its lanes.</summary>
    private sealed class MirrorArray(Node node, string id, string key, DeviceSlot? slot)
    {
        public Node Node { get; } = node;

        /// <summary>The node executor's array id ("a3").</summary>
        public string Id { get; } = id;

        public string Key { get; } = key;

        /// <summary>The array's slot on the mirror; null in the rare case the node opened one the mirror had no room for.</summary>
        public DeviceSlot? Slot { get; } = slot;

        public HashSet<Run> Lanes { get; } = new();

        /// <summary>A slot-freed event of one of its lanes came: the node closed the array and its slot is free there.</summary>
        public bool ClosedOnNode { get; set; }

        public bool Released { get; set; }
    }

    /// <summary>A worker as the controller sees it: its mirror allocator, queued operations and the order they go out in.</summary>
    private sealed class Node
    {
        private readonly ClusterTrialExecutor _owner;
        private readonly List<NodeOp> _queued = new();
        private Task _tail = Task.CompletedTask;
        private CancellationTokenSource? _polling;
        private long _seenOrphanEpoch;

        public Node(ClusterTrialExecutor owner, NodeInfo info)
        {
            _owner = owner;
            Info = info;
            Grain = owner._client.GetGrain<INodeGrain>(info.Key);
            var gpus = info.GpuMemoryBytes.Select((bytes, i) => new GpuDevice(i, info.GpuNames.ElementAtOrDefault(i) ?? $"gpu{i}", bytes, GpuSource.Simulated)).ToList();
            Mirror = new DeviceSlotAllocator(new DeviceInventory(info.Cpus, info.HostMemoryBytes, gpus, info.Custom));
        }

        public NodeInfo Info { get; }

        public INodeGrain Grain { get; }

        public DeviceSlotAllocator Mirror { get; }

        public List<Run> Runs { get; } = new();

        /// <summary>Fused arrays open on the node, by the node's array id.</summary>
        public Dictionary<string, MirrorArray> Arrays { get; } = new(StringComparer.Ordinal);

        public bool Lost { get; set; }

        /// <summary>An array of <paramref name="key"/> with a free lane, the fullest first (as the node's executor refills).</summary>
        public MirrorArray? FreeLane(string key, int maxMembers) =>
            Arrays.Values.Where(a => a.Key == key && a.Slot is not null && a.Lanes.Count > 0 && a.Lanes.Count < maxMembers)
                .OrderByDescending(a => a.Lanes.Count).FirstOrDefault();

        /// <summary>
        /// The array a start landed in (<paramref name="lane"/> is the node's "a3.1"): the known one, whose slot it shares
        /// (<paramref name="allocated"/>, taken for a new array, goes back), or a new one holding <paramref name="allocated"/>.
        /// </summary>
        public MirrorArray Lane(string lane, string key, DeviceSlot? allocated, Resources resources)
        {
            var id = lane.Split('.')[0];
            if (Arrays.TryGetValue(id, out var known) && !known.Released)
            {
                if (allocated is not null) Mirror.Release(allocated);
                return known;
            }
            var array = new MirrorArray(this, id, key, allocated ?? Mirror.TryAllocate(resources, id));
            Arrays[id] = array;
            return array;
        }

        public void Queue(NodeOp op) => _queued.Add(op);

        /// <summary>Sends the queued operations after everything sent before (one call).</summary>
        public void Flush()
        {
            if (_queued.Count == 0 || Lost) return;
            var ops = _queued.ToArray();
            _queued.Clear();
            var previous = _tail;
            _tail = Send(previous, ops);
        }

        private async Task Send(Task previous, NodeOp[] ops)
        {
            try
            {
                await previous.ConfigureAwait(false);
            }
            catch
            {
                // Reported by the call that failed.
            }
            try
            {
                await Grain.Apply(ops).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _owner._logger.LogWarning("cluster: sending {Count} operations to worker {Name} failed: {Message}", ops.Length, Info.Name, e.Message);
                throw;
            }
        }

        /// <summary>A call that waits for everything sent before it, and for its answer.</summary>
        public T Call<T>(Func<INodeGrain, Task<T>> call)
        {
            var previous = _tail;
            var task = After(previous, call);
            _tail = task;
            return task.GetAwaiter().GetResult();
        }

        public void Call(Func<INodeGrain, Task> call) => Call(async g =>
        {
            await call(g).ConfigureAwait(false);
            return true;
        });

        private async Task<T> After<T>(Task previous, Func<INodeGrain, Task<T>> call)
        {
            try
            {
                await previous.ConfigureAwait(false);
            }
            catch
            {
                // Reported by the call that failed.
            }
            return await call(Grain).ConfigureAwait(false);
        }

        public void StartPolling(CancellationToken stop)
        {
            _polling = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var token = _polling.Token;
            _ = Task.Run(async () =>
            {
                int failures = 0;
                var failingSince = DateTime.MinValue;
                while (!token.IsCancellationRequested)
                {
                    try
                    {
                        var batch = await Grain.Poll(_owner._options.PollMilliseconds).ConfigureAwait(false);
                        failures = 0;
                        failingSince = DateTime.MinValue;
                        if (batch.OrphanEpoch > _seenOrphanEpoch)
                        {
                            _seenOrphanEpoch = batch.OrphanEpoch;
                            _owner._orphaned.Enqueue((this, batch.OrphanEpoch));
                            _owner._signal.Release();
                        }
                        if (batch.Events.Length == 0) continue;
                        Interlocked.Increment(ref _owner._batches);
                        foreach (var e in batch.Events) _owner.Receive(this, e);
                        _owner._signal.Release();
                    }
                    catch (Exception e) when (!token.IsCancellationRequested)
                    {
                        if (++failures == 1)
                        {
                            failingSince = DateTime.UtcNow;
                            _owner._logger.LogDebug(e, "cluster: polling worker {Name} failed", Info.Name);
                        }
                        else if (DateTime.UtcNow - failingSince >= _owner._options.UnreachableAfter)
                        {
                            _owner._unreachable.Enqueue((this, $"unreachable for {_owner._options.UnreachableAfter.TotalSeconds:0} s: {ClusterWorker.OneLine(e)}"));
                            _owner._signal.Release();
                            return;
                        }
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 20 * failures)), CancellationToken.None).ConfigureAwait(false);
                    }
                }
            }, CancellationToken.None);
        }

        public void StopPolling() => _polling?.Cancel();
    }

    /// <summary>From a poll: memory saves complete at once (a controller thread may be waiting on one); the rest queue.</summary>
    private void Receive(Node node, NodeEvent e)
    {
        switch (e.Kind)
        {
            case NodeEventKind.SavedToMemory when _memory.TryGetValue(e.CheckpointId, out var saved):
                saved.Checkpoint.CompleteRemote(e.ByteSize, saved);
                return;
            case NodeEventKind.MemorySaveFailed when _memory.TryRemove(e.CheckpointId, out var failed):
                failed.Checkpoint.Fail(new InvalidOperationException(e.Error ?? "the memory save failed"));
                return;
            case NodeEventKind.SavedToMemory or NodeEventKind.MemorySaveFailed:
                return;
        }
        _incoming.Enqueue((node, e));
    }

    /// <summary>A memory checkpoint held on a node.</summary>
    private sealed class RemoteMemory(ClusterTrialExecutor owner, Node node, long id, MemoryCheckpoint checkpoint) : IRemoteCheckpointState
    {
        public ClusterTrialExecutor Owner { get; } = owner;

        public Node Node { get; } = node;

        public long Id { get; } = id;

        public MemoryCheckpoint Checkpoint { get; } = checkpoint;

        public TrainableState Load(Device device)
        {
            var files = Node.Grain.Fetch(Id).GetAwaiter().GetResult();
            var folder = Path.Combine(Owner._scratch, "fetch-" + Guid.NewGuid().ToString("N"));
            var persistent = CheckpointFiles.Write(files, folder);
            try
            {
                return persistent.LoadState(device);
            }
            finally
            {
                persistent.Delete();
            }
        }

        public void Release()
        {
            if (!Owner._memory.TryRemove(Id, out _) || Node.Lost || Owner._disposed) return;
            // Sent with the node's next batch, in order after the operations that may still use it.
            Node.Queue(new NodeOp { Kind = NodeOpKind.DeleteMemory, CheckpointId = Id });
        }
    }
}

/// <summary>Options of the cluster executor.</summary>
public sealed record ClusterExecutorOptions
{
    /// <summary>How often the controller reads the cluster's membership (joins and losses).</summary>
    public TimeSpan MembershipInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long the controller waits for a first worker before it gives up.</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a node's long poll waits for a first event.</summary>
    public int PollMilliseconds { get; init; } = 500;

    /// <summary>
    /// A worker whose polls have all failed this long is taken as lost, whatever the membership says (Orleans' death
    /// vote was seen never to come on a two-worker PostgreSQL cluster); its trials are requeued. Longer than a node's
    /// controller lease (10 s), so a worker that is alive but cut off has stopped them by then.
    /// </summary>
    public TimeSpan UnreachableAfter { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>A trial's failure on a worker, naming the worker.</summary>
public sealed class NodeTrialException(string node, string message, string? errorType) : Exception(message)
{
    public string Node { get; } = node;

    /// <summary>The type of the exception on the worker.</summary>
    public string? ErrorType { get; } = errorType;
}

/// <summary>The cluster cannot be reached, or no worker is in it.</summary>
public sealed class ClusterUnavailableException(string message) : Exception(message);
