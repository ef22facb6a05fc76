using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Runs every trial on the calling thread, one operation per event, in the order they were queued. Deterministic:
/// the executor for tests and for embedding the controller in a single-threaded host. Setup, memory checkpoints and
/// exploits happen at once (a failure among them is queued as the trial's next <see cref="FailureEvent"/>, as the
/// concurrent executor reports it); training steps, persistent saves and persistent restores each become one event.
/// </summary>
public sealed class InlineTrialExecutor : ITrialExecutor
{
    private readonly TrainableRegistry _registry;
    private readonly Dictionary<Trial, TrialSession> _sessions = new();
    private readonly LinkedList<Operation> _queue = new();
    private readonly Dictionary<DeviceSlot, TrialSession> _bySlot = new();
    private readonly IncarnationCounter _incarnations = new();
    private readonly TrialReuseCache<TrialSession> _reuse;

    public InlineTrialExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions? options = null)
    {
        Allocator = allocator;
        _registry = registry;
        options ??= new ExecutorOptions();
        _reuse = new TrialReuseCache<TrialSession>(options.ReuseTrainables, session => session, Discard);
        CheckpointStore = ExecutorCheckpointStore.Create(options);
    }

    public DeviceSlotAllocator Allocator { get; }

    public MemoryCheckpointStore CheckpointStore { get; }

    public bool HasWork => _queue.Count > 0;

    public bool HasResourcesFor(Trial trial) => _reuse.HasResourcesFor(trial, Allocator);

    public bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory)
    {
        if (_sessions.ContainsKey(trial)) throw new InvalidOperationException($"trial {trial.Id} is already running");

        TrialSession session;
        if (_reuse.TakeFor(trial) is { } cached)
        {
            session = cached;
            session.Renew(trial, _incarnations.Next(trial));
            try
            {
                session.ResetForReuse(contextFactory(trial, session.Slot));
            }
            catch
            {
                Discard(session);
                throw;
            }
        }
        else
        {
            var slot = Allocator.TryAllocate(trial.Resources, trial.Id);
            if (slot is null) return false;
            session = new TrialSession(trial, slot, _incarnations.Next(trial));
            try
            {
                session.Setup(TrialSession.Lookup(_registry, trial), contextFactory(trial, slot));
            }
            catch
            {
                Discard(session);
                throw;
            }
        }

        _sessions[trial] = session;
        _bySlot[session.Slot] = session;
        trial.Slot = session.Slot.Placement;
        if (checkpoint is MemoryCheckpoint memory)
        {
            RunNow(session, () => session.Restore(memory));
        }
        else if (checkpoint is PersistentCheckpoint persistent)
        {
            trial.IsRestoring = true;
            Enqueue(new Operation(session, OperationKind.Restore) { Checkpoint = persistent });
        }
        return true;
    }

    /// <summary>Queues one training step (the inline executor always runs one iteration per event).</summary>
    public void ContinueTraining(Trial trial, int steps = 1)
    {
        var session = SessionOf(trial);
        if (_queue.Any(o => o.Session == session && o.Kind == OperationKind.Train)) return;
        Enqueue(new Operation(session, OperationKind.Train));
    }

    public MemoryCheckpoint SaveToMemory(Trial trial, TrialResult? result = null)
    {
        var session = SessionOf(trial);
        var checkpoint = CheckpointStore.Add(MemoryCheckpoint.Pending(result ?? trial.LastResult));
        if (!RunNow(session, () => session.SaveToMemory(checkpoint)) && !checkpoint.IsReady)
            checkpoint.Fail(new InvalidOperationException($"trial {trial.Id} skipped an operation after an earlier failure"));
        return checkpoint;
    }

    public void SaveToDisk(Trial trial, string directory) =>
        Enqueue(new Operation(SessionOf(trial), OperationKind.Save) { Directory = directory, Result = trial.LastResult });

    public void Exploit(Trial trial, Checkpoint donor, TrialConfig config)
    {
        var session = SessionOf(trial);
        RunNow(session, () => session.Exploit(donor, config));
    }

    public void Stop(Trial trial, bool error)
    {
        if (!_sessions.Remove(trial, out var session)) return;
        for (var node = _queue.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Session == session) _queue.Remove(node);
            node = next;
        }
        if (!_reuse.TryKeep(session, error)) Discard(session);
    }

    public ExecutorEvent? NextEvent(TimeSpan timeout)
    {
        while (_queue.First is { } node)
        {
            _queue.RemoveFirst();
            var op = node.Value;
            var session = op.Session;
            if (op.Failure is { } failure) return failure;
            if (session.Broken) continue;
            var trial = session.Trial;
            try
            {
                switch (op.Kind)
                {
                    case OperationKind.Train:
                        ResultEvent? ev = null;
                        session.Train(1, (results, last) => ev = new ResultEvent(trial, session.Incarnation, results) { EndOfTraining = last });
                        return ev;
                    case OperationKind.Save:
                        return new SaveEvent(trial, session.Incarnation, session.SaveToDisk(op.Directory!, op.Result));
                    case OperationKind.Restore:
                        session.Restore(op.Checkpoint!);
                        return new RestoreEvent(trial, session.Incarnation);
                    default:
                        throw new InvalidOperationException($"unknown operation {op.Kind}");
                }
            }
            catch (Exception e)
            {
                return session.Fail(trial, session.Incarnation, e);
            }
        }
        return null;
    }

    public IReadOnlyList<Trial> TakeLostTrials()
    {
        var lost = Allocator.TakeLostSlots();
        if (lost.Count == 0) return Array.Empty<Trial>();
        return lost.Where(_bySlot.ContainsKey).Select(s => _bySlot[s].Trial).Where(_sessions.ContainsKey).ToList();
    }

    public int IncarnationOf(Trial trial) => _incarnations.Of(trial);

    /// <summary>The live trainable of a running trial, for tests that inspect it (the inline executor runs it on the caller's thread).</summary>
    internal Trainable? TrainableOf(Trial trial) => _sessions.TryGetValue(trial, out var s) ? s.Host?.Trainable : null;

    public void Dispose()
    {
        foreach (var session in _sessions.Values.ToList()) Discard(session);
        _sessions.Clear();
        _queue.Clear();
        _reuse.Drop();
    }

    /// <summary>
    /// Runs an operation now; a failure marks the trial broken and is queued as its next event, as a failed operation on
    /// the concurrent executor's trial thread is. False when the operation failed or was skipped after an earlier failure.
    /// </summary>
    private bool RunNow(TrialSession session, Action operation)
    {
        if (session.Broken) return false;
        try
        {
            operation();
            return true;
        }
        catch (Exception e)
        {
            Enqueue(new Operation(session, OperationKind.Fail) { Failure = session.Fail(session.Trial, session.Incarnation, e) });
            return false;
        }
    }

    private TrialSession SessionOf(Trial trial) =>
        _sessions.TryGetValue(trial, out var s) ? s : throw new InvalidOperationException($"trial {trial.Id} is not running");

    private void Enqueue(Operation op) => _queue.AddLast(op);

    private void Discard(TrialSession session)
    {
        _bySlot.Remove(session.Slot);
        session.Dispose();
        if (!session.Slot.Released) Allocator.Release(session.Slot);
    }

    private enum OperationKind
    {
        Train,
        Save,
        Restore,
        Fail,
    }

    private sealed record Operation(TrialSession Session, OperationKind Kind)
    {
        public string? Directory { get; init; }
        public TrialResult? Result { get; init; }
        public PersistentCheckpoint? Checkpoint { get; init; }
        public FailureEvent? Failure { get; init; }
    }
}
