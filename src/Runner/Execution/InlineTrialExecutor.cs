using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Runs every trial on the calling thread, one operation per event, in the order they were queued. Deterministic:
/// the executor for tests and for embedding the controller in a single-threaded host. Setup and memory
/// checkpoints happen at once; training steps, persistent saves and persistent restores each become one event.
/// </summary>
public sealed class InlineTrialExecutor : ITrialExecutor
{
    private readonly TrainableRegistry _registry;
    private readonly ExecutorOptions _options;
    private readonly Dictionary<Trial, TrialSession> _sessions = new();
    private readonly LinkedList<Operation> _queue = new();
    private readonly Dictionary<DeviceSlot, TrialSession> _bySlot = new();
    private readonly Dictionary<Trial, int> _incarnations = new();
    private TrialSession? _cached;

    public InlineTrialExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions? options = null)
    {
        Allocator = allocator;
        _registry = registry;
        _options = options ?? new ExecutorOptions();
        CheckpointStore = new MemoryCheckpointStore(_options.DeviceCheckpointBudgetBytes, _options.HostCheckpointBudgetBytes,
            _options.SpillDirectory ?? Path.Combine(Path.GetTempPath(), "torchtrials-spill", Guid.NewGuid().ToString("N")[..8]));
    }

    public DeviceSlotAllocator Allocator { get; }

    public MemoryCheckpointStore CheckpointStore { get; }

    public bool HasWork => _queue.Count > 0;

    public bool HasResourcesFor(Trial trial)
    {
        if (_cached is not null && _cached.Slot.Request == trial.Resources) return true;
        if (_cached is not null && !Allocator.CanAllocate(trial.Resources)) DropCached();
        return Allocator.CanAllocate(trial.Resources);
    }

    public bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory)
    {
        if (_sessions.ContainsKey(trial)) throw new InvalidOperationException($"trial {trial.Id} is already running");
        int incarnation = _incarnations[trial] = _incarnations.GetValueOrDefault(trial) + 1;

        TrialSession session;
        if (_options.ReuseTrainables && _cached is { } cached && cached.Slot.Request == trial.Resources)
        {
            _cached = null;
            session = cached;
            session.Trial = trial;
            session.Incarnation = incarnation;
            bool reset;
            try
            {
                reset = session.Reset(trial.Config, contextFactory(trial, session.Slot));
            }
            catch (Exception e)
            {
                Discard(session);
                throw new TrialStartException($"trial {trial.Id}: resetting the reused trainable failed: {e.Message}", e);
            }
            if (!reset)
            {
                Discard(session);
                throw new TrialStartException("Trainable runner reuse requires Reset() to be implemented and return true.");
            }
        }
        else
        {
            DropCached();
            var slot = Allocator.TryAllocate(trial.Resources, trial.Id);
            if (slot is null) return false;
            session = new TrialSession(trial, slot, incarnation);
            try
            {
                var entry = _registry.Get(trial.TrainableName);
                session.Setup(entry, trial.Config, contextFactory(trial, slot));
            }
            catch (Exception e)
            {
                Discard(session);
                throw new TrialStartException($"trial {trial.Id}: could not start trainable '{trial.TrainableName}': {e.Message}", e);
            }
        }

        _sessions[trial] = session;
        _bySlot[session.Slot] = session;
        if (checkpoint is MemoryCheckpoint)
        {
            try
            {
                session.Restore(checkpoint);
            }
            catch (Exception e)
            {
                _sessions.Remove(trial);
                Discard(session);
                throw new TrialStartException($"trial {trial.Id}: restoring its memory checkpoint failed: {e.Message}", e);
            }
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
        session.SaveToMemory(checkpoint);
        return checkpoint;
    }

    public void SaveToDisk(Trial trial, string directory) =>
        Enqueue(new Operation(SessionOf(trial), OperationKind.Save) { Directory = directory, Result = trial.LastResult });

    public void Exploit(Trial trial, Checkpoint donor, TrialConfig config) => SessionOf(trial).Exploit(donor, config);

    public void Stop(Trial trial, bool error)
    {
        if (!_sessions.Remove(trial, out var session)) return;
        for (var node = _queue.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Session == session) _queue.Remove(node);
            node = next;
        }
        if (!error && _options.ReuseTrainables && _cached is null && !session.Slot.IsLost)
        {
            _cached = session;
            return;
        }
        Discard(session);
    }

    public ExecutorEvent? NextEvent(TimeSpan timeout)
    {
        if (_queue.First is not { } node) return null;
        _queue.RemoveFirst();
        var op = node.Value;
        var trial = op.Session.Trial;
        try
        {
            switch (op.Kind)
            {
                case OperationKind.Train:
                    return new ResultEvent(trial, op.Session.Incarnation, op.Session.Train(1));
                case OperationKind.Save:
                    return new SaveEvent(trial, op.Session.Incarnation, op.Session.SaveToDisk(op.Directory!, op.Result));
                case OperationKind.Restore:
                    op.Session.Restore(op.Checkpoint!);
                    return new RestoreEvent(trial, op.Session.Incarnation);
                default:
                    throw new InvalidOperationException($"unknown operation {op.Kind}");
            }
        }
        catch (Exception e)
        {
            return new FailureEvent(trial, op.Session.Incarnation, e);
        }
    }

    public IReadOnlyList<Trial> TakeLostTrials()
    {
        var lost = Allocator.TakeLostSlots();
        if (lost.Count == 0) return Array.Empty<Trial>();
        return lost.Where(_bySlot.ContainsKey).Select(s => _bySlot[s].Trial).Where(_sessions.ContainsKey).ToList();
    }

    public int IncarnationOf(Trial trial) => _incarnations.GetValueOrDefault(trial);

    public Trainable? GetTrainable(Trial trial) => _sessions.TryGetValue(trial, out var s) ? s.Host?.Trainable : null;

    public void Dispose()
    {
        foreach (var session in _sessions.Values.ToList()) Discard(session);
        _sessions.Clear();
        _queue.Clear();
        DropCached();
    }

    private TrialSession SessionOf(Trial trial) =>
        _sessions.TryGetValue(trial, out var s) ? s : throw new InvalidOperationException($"trial {trial.Id} is not running");

    private void Enqueue(Operation op) => _queue.AddLast(op);

    private void DropCached()
    {
        if (_cached is null) return;
        var cached = _cached;
        _cached = null;
        Discard(cached);
    }

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
    }

    private sealed record Operation(TrialSession Session, OperationKind Kind)
    {
        public string? Directory { get; init; }
        public TrialResult? Result { get; init; }
        public PersistentCheckpoint? Checkpoint { get; init; }
    }
}
