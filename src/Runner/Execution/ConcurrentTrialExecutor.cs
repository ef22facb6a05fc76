using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Gpu.Cuda;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Runs each trial on a dedicated OS thread bound to its slot: TorchSharp's dispose scopes and LibTorch's current CUDA
/// stream are thread-local, so a trial never hops threads. Before touching tensors the thread sets LibTorch's intra-op
/// thread count to the slot's CPUs (so N concurrent trials do not oversubscribe the cores) and, on CUDA, makes the slot's
/// own stream current; nothing here calls the device-wide synchronize. Operations are queued per trial and run in order
/// (training, memory and disk saves, restores, exploits, stop); results and completions flow back through one event
/// channel that the controller drains, so the controller never blocks on a single trial. Threads are pooled and reused
/// across trials.
/// </summary>
public sealed class ConcurrentTrialExecutor : ITrialExecutor
{
    private readonly TrainableRegistry _registry;
    private readonly ExecutorOptions _options;
    private readonly ILogger _logger;
    private readonly CudaStreamApi? _streams;
    private readonly Dictionary<Trial, Live> _live = new();
    private readonly Dictionary<DeviceSlot, Live> _bySlot = new();
    private readonly Dictionary<Trial, int> _incarnations = new();
    private readonly ConcurrentQueue<ExecutorEvent> _events = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Stack<TrialWorker> _idle = new();
    private readonly List<TrialWorker> _workers = new();
    private readonly object _poolGate = new();
    private readonly HashSet<TrialWorker> _staged = new();
    private Live? _cached;
    private int _releasing;
    private bool _disposed;

    /// <param name="threadsPerTrial">LibTorch intra-op threads per trial; null uses the slot's whole CPUs (at least one).</param>
    public ConcurrentTrialExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions? options = null,
        CudaStreamApi? streams = null, int? threadsPerTrial = null, ILogger? logger = null)
    {
        Allocator = allocator;
        _registry = registry;
        _options = options ?? new ExecutorOptions();
        _streams = streams;
        ThreadsPerTrial = threadsPerTrial;
        _logger = logger ?? NullLogger.Instance;
        CheckpointStore = new MemoryCheckpointStore(_options.DeviceCheckpointBudgetBytes, _options.HostCheckpointBudgetBytes,
            _options.SpillDirectory ?? Path.Combine(Path.GetTempPath(), "torchtrials-spill", Guid.NewGuid().ToString("N")[..8]), streams);
    }

    public DeviceSlotAllocator Allocator { get; }

    public MemoryCheckpointStore CheckpointStore { get; }

    public int? ThreadsPerTrial { get; }

    /// <summary>OS threads created so far (they are reused across trials).</summary>
    public int ThreadsCreated
    {
        get { lock (_poolGate) return _workers.Count; }
    }

    public bool HasWork => _live.Count > 0 || Volatile.Read(ref _releasing) > 0 || !_events.IsEmpty;

    public bool HasResourcesFor(Trial trial)
    {
        if (_cached is not null && _cached.Session.Slot.Request == trial.Resources) return true;
        if (_cached is not null && !Allocator.CanAllocate(trial.Resources)) DropCached();
        return Allocator.CanAllocate(trial.Resources);
    }

    public bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_live.ContainsKey(trial)) throw new InvalidOperationException($"trial {trial.Id} is already running");

        Live live;
        if (_options.ReuseTrainables && _cached is { } cached && cached.Session.Slot.Request == trial.Resources)
        {
            _cached = null;
            live = cached;
            live.Renew(trial, NextIncarnation(trial));
            var context = contextFactory(trial, live.Session.Slot) with { Cancellation = live.Cancellation.Token };
            var reset = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
            live.Worker.Post(() =>
            {
                try
                {
                    reset.SetResult(live.Session.Reset(trial.Config, context) ? null
                        : new InvalidOperationException("Trainable runner reuse requires Reset() to be implemented and return true."));
                }
                catch (Exception e)
                {
                    reset.SetResult(e);
                }
            });
            // Reuse is decided at start, as in Ray: wait for the reset (a config swap, normally instant).
            if (reset.Task.GetAwaiter().GetResult() is { } failure)
            {
                Retire(live, release: true);
                throw new TrialStartException(failure.Message, failure);
            }
        }
        else
        {
            DropCached();
            var slot = Allocator.TryAllocate(trial.Resources, trial.Id);
            if (slot is null) return false;
            RegisteredTrainable entry;
            try
            {
                entry = _registry.Get(trial.TrainableName);
            }
            catch (KeyNotFoundException e)
            {
                Allocator.Release(slot);
                throw new TrialStartException($"trial {trial.Id}: {e.Message}", e);
            }
            live = new Live(new TrialSession(trial, slot, NextIncarnation(trial)), RentWorker());
            var context = contextFactory(trial, slot) with { Cancellation = live.Cancellation.Token };
            int incarnation = live.Session.Incarnation;
            int threads = ThreadsPerTrial ?? slot.CpuThreads;
            Stage(live.Worker, () =>
            {
                try
                {
                    Bind(slot, threads);
                    live.Session.Setup(entry, trial.Config, context);
                }
                catch (Exception e)
                {
                    live.Broken = true;
                    Publish(new FailureEvent(trial, incarnation, new TrialStartException($"trial {trial.Id}: could not start trainable '{trial.TrainableName}': {e.Message}", e)));
                }
            });
        }

        _live[trial] = live;
        _bySlot[live.Session.Slot] = live;
        if (checkpoint is MemoryCheckpoint memory)
        {
            var lease = memory.Retain();
            PostOp(live, session =>
            {
                using (lease)
                {
                    WaitForProducer(memory, session.Slot);
                    session.Restore(memory);
                }
            });
        }
        else if (checkpoint is PersistentCheckpoint persistent)
        {
            trial.IsRestoring = true;
            PostOp(live, session =>
            {
                session.Restore(persistent);
                Publish(new RestoreEvent(session.Trial, session.Incarnation));
            });
        }
        return true;
    }

    public void ContinueTraining(Trial trial, int steps = 1)
    {
        var live = LiveOf(trial);
        if (live.TrainingGranted) return;
        live.TrainingGranted = true;
        Volatile.Write(ref live.StopRequested, false);
        PostOp(live, session => Train(live, session, Math.Max(1, steps)));
    }

    public MemoryCheckpoint SaveToMemory(Trial trial, TrialResult? result = null)
    {
        var live = LiveOf(trial);
        var checkpoint = CheckpointStore.Add(MemoryCheckpoint.Pending(result ?? trial.LastResult));
        PostOp(live, session => session.SaveToMemory(checkpoint), onFailure: e => checkpoint.Fail(e));
        return checkpoint;
    }

    public void SaveToDisk(Trial trial, string directory)
    {
        var live = LiveOf(trial);
        var result = trial.LastResult;
        PostOp(live, session => Publish(new SaveEvent(session.Trial, session.Incarnation, session.SaveToDisk(directory, result))));
    }

    public void Exploit(Trial trial, Checkpoint donor, TrialConfig config)
    {
        var live = LiveOf(trial);
        var lease = (donor as MemoryCheckpoint)?.Retain();
        PostOp(live, session =>
        {
            using (lease)
            {
                if (donor is MemoryCheckpoint memory) WaitForProducer(memory, session.Slot);
                session.Exploit(donor, config);
            }
        });
    }

    public void Stop(Trial trial, bool error)
    {
        if (!_live.Remove(trial, out var live)) return;
        Volatile.Write(ref live.StopRequested, true);
        live.TrainingGranted = false;
        if (!error && _options.ReuseTrainables && _cached is null && !live.Session.Slot.IsLost && !live.Broken)
        {
            _cached = live;
            return;
        }
        Retire(live, release: true);
    }

    public void Dispatch()
    {
        if (_staged.Count == 0) return;
        foreach (var worker in _staged) worker.Flush();
        _staged.Clear();
    }

    private void Stage(TrialWorker worker, Action action)
    {
        worker.Stage(action);
        _staged.Add(worker);
    }

    public ExecutorEvent? NextEvent(TimeSpan timeout)
    {
        Dispatch();
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            while (_events.TryDequeue(out var ev))
            {
                if (ev is SlotFreedEvent)
                {
                    // A slot came back: return so the controller's next step can start a waiting trial on it at once,
                    // rather than leaving the slot idle until some other trial reports.
                    Interlocked.Decrement(ref _releasing);
                    return null;
                }
                if (ev is ResultEvent { EndOfTraining: true } r && _live.TryGetValue(r.Trial, out var live) && live.Session.Incarnation == r.Incarnation)
                    live.TrainingGranted = false;
                if (ev is FailureEvent f && _live.TryGetValue(f.Trial, out var failed) && failed.Session.Incarnation == f.Incarnation)
                    failed.TrainingGranted = false;
                return ev;
            }
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (remaining <= 0 || !HasWork) return null;
            _signal.Wait(TimeSpan.FromSeconds(Math.Min(remaining / (double)Stopwatch.Frequency, 0.25)));
        }
    }

    public IReadOnlyList<Trial> TakeLostTrials()
    {
        var lost = Allocator.TakeLostSlots();
        if (lost.Count == 0) return Array.Empty<Trial>();
        var trials = new List<Trial>();
        foreach (var slot in lost)
        {
            if (_bySlot.TryGetValue(slot, out var live) && _live.ContainsKey(live.Session.Trial))
            {
                live.Cancellation.Cancel();
                trials.Add(live.Session.Trial);
            }
            else if (_cached is { } cached && cached.Session.Slot == slot)
            {
                DropCached();
            }
        }
        return trials;
    }

    public int IncarnationOf(Trial trial) => _incarnations.GetValueOrDefault(trial);

    /// <summary>Not available: the trainable lives on its own thread. Use the inline executor to inspect trainables.</summary>
    public Trainable? GetTrainable(Trial trial) => null;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var live in _live.Values.ToList()) Retire(live, release: true);
        _live.Clear();
        DropCached();
        Dispatch();
        List<TrialWorker> workers;
        lock (_poolGate) workers = _workers.ToList();
        foreach (var worker in workers) worker.Shutdown();
        foreach (var worker in workers)
            if (!worker.Join(TimeSpan.FromSeconds(30)))
                _logger.LogWarning("Trial thread {Thread} did not finish within 30 s", worker.Name);
    }

    private int NextIncarnation(Trial trial) => _incarnations[trial] = _incarnations.GetValueOrDefault(trial) + 1;

    /// <summary>Runs up to <paramref name="steps"/> iterations, publishing results in chunks (each chunk read from the device at once).</summary>
    private void Train(Live live, TrialSession session, int steps)
    {
        var host = session.Host ?? throw new InvalidOperationException($"trial {session.Trial.Id} has no trainable");
        var chunk = new List<PendingResult>();
        long chunkStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < steps; i++)
        {
            if (Volatile.Read(ref live.StopRequested)) break;
            var step = host.Step();
            chunk.Add(step);
            bool last = i == steps - 1 || step.Done || step.ShouldCheckpoint;
            // The first result of a grant goes out at once (a new trial shows progress immediately); later ones every 20 ms.
            bool due = i == 0 || chunk.Count >= 256 || Stopwatch.GetElapsedTime(chunkStart).TotalMilliseconds >= 20;
            if (last || due)
            {
                Publish(new ResultEvent(session.Trial, session.Incarnation, host.Materialize(chunk)) { EndOfTraining = last });
                chunk = new List<PendingResult>();
                chunkStart = Stopwatch.GetTimestamp();
            }
            if (last) return;
        }
        if (chunk.Count > 0)
            Publish(new ResultEvent(session.Trial, session.Incarnation, host.Materialize(chunk)) { EndOfTraining = true });
        else
            Publish(new ResultEvent(session.Trial, session.Incarnation, Array.Empty<TrialResult>()) { EndOfTraining = true });
    }

    /// <summary>Queues an operation on the trial's thread; a failure becomes a <see cref="FailureEvent"/> for the trial.</summary>
    private void PostOp(Live live, Action<TrialSession> op, Action<Exception>? onFailure = null)
    {
        var session = live.Session;
        Stage(live.Worker, () =>
        {
            if (live.Broken)
            {
                // Nothing may wait forever on an operation that will not run (a pending checkpoint, say).
                onFailure?.Invoke(new InvalidOperationException($"trial {session.Trial.Id} skipped an operation after an earlier failure"));
                return;
            }
            int incarnation = session.Incarnation;
            var trial = session.Trial;
            try
            {
                op(session);
            }
            catch (Exception e)
            {
                onFailure?.Invoke(e);
                live.Broken = true;
                Publish(new FailureEvent(trial, incarnation, e is OperationCanceledException && session.Slot.IsLost
                    ? new InvalidOperationException($"the device of trial {trial.Id} was lost", e) : e, session.Slot.IsLost));
            }
        });
    }

    /// <summary>Disposes the trainable on its thread, frees the slot, and returns the thread to the pool.</summary>
    private void Retire(Live live, bool release)
    {
        _bySlot.Remove(live.Session.Slot);
        live.Cancellation.Cancel();
        Interlocked.Increment(ref _releasing);
        var worker = live.Worker;
        Stage(worker, () =>
        {
            try
            {
                live.Session.Dispose();
            }
            catch (Exception e)
            {
                _logger.LogWarning(e, "Disposing the trainable of trial {TrialId} failed", live.Session.Trial.Id);
            }
            finally
            {
                if (release && !live.Session.Slot.Released) Allocator.Release(live.Session.Slot);
                live.Cancellation.Dispose();
                ReturnWorker(worker);
                Publish(SlotFreedEvent.Instance);
            }
        });
    }

    private void DropCached()
    {
        if (_cached is null) return;
        var cached = _cached;
        _cached = null;
        Retire(cached, release: true);
    }

    private void Publish(ExecutorEvent ev)
    {
        _events.Enqueue(ev);
        _signal.Release();
    }

    private void Bind(DeviceSlot slot, int threads)
    {
        if (torch.get_num_threads() != threads) torch.set_num_threads(threads);
        if (slot.Stream is { } stream) _streams?.SetCurrent(stream);
    }

    /// <summary>A checkpoint captured on another trial's stream must be complete before this thread reads it.</summary>
    private void WaitForProducer(MemoryCheckpoint checkpoint, DeviceSlot slot)
    {
        if (checkpoint.ProducerStream is { } producer && producer != slot.Stream) _streams?.Synchronize(producer);
    }

    private TrialWorker RentWorker()
    {
        lock (_poolGate)
        {
            if (_idle.Count > 0) return _idle.Pop();
            var worker = new TrialWorker($"torchtrials-trial-{_workers.Count}", _logger);
            _workers.Add(worker);
            return worker;
        }
    }

    private void ReturnWorker(TrialWorker worker)
    {
        lock (_poolGate)
        {
            if (!_disposed) _idle.Push(worker);
        }
    }

    private Live LiveOf(Trial trial) =>
        _live.TryGetValue(trial, out var live) ? live : throw new InvalidOperationException($"trial {trial.Id} is not running");

    /// <summary>Controller-side record of a trial running on a worker.</summary>
    private sealed class Live(TrialSession session, TrialWorker worker)
    {
        public TrialSession Session { get; } = session;

        public TrialWorker Worker { get; } = worker;

        public CancellationTokenSource Cancellation { get; private set; } = new();

        /// <summary>Steps were granted and their last result has not been seen yet (controller thread only).</summary>
        public bool TrainingGranted { get; set; }

        /// <summary>Set when the trial must stop between steps.</summary>
        public bool StopRequested;

        /// <summary>An operation failed; later operations of this incarnation are skipped.</summary>
        public volatile bool Broken;

        public void Renew(Trial trial, int incarnation)
        {
            Cancellation.Dispose();
            Cancellation = new CancellationTokenSource();
            Session.Trial = trial;
            Session.Incarnation = incarnation;
            TrainingGranted = false;
            StopRequested = false;
            Broken = false;
        }
    }

    /// <summary>Wakes the controller when a slot went back to the allocator; never returned to the controller.</summary>
    private sealed record SlotFreedEvent() : ExecutorEvent(null!, 0)
    {
        public static SlotFreedEvent Instance { get; } = new();
    }

    /// <summary>
    /// A dedicated OS thread running queued actions in order. Idle threads block on a monitor without spinning, so a
    /// hundred idle trial threads cost the cores nothing.
    /// </summary>
    private sealed class TrialWorker
    {
        private readonly Queue<Action?> _queue = new();
        private readonly Thread _thread;
        private readonly ILogger _logger;

        public TrialWorker(string name, ILogger logger)
        {
            Name = name;
            _logger = logger;
            _thread = new Thread(Run) { IsBackground = true, Name = name };
            _thread.Start();
        }

        public string Name { get; }

        private readonly List<Action> _staged = new();

        /// <summary>Runs <paramref name="action"/> after everything queued before it.</summary>
        public void Post(Action action) => Enqueue(action);

        /// <summary>Collects an action on the controller's thread; <see cref="Flush"/> hands the collection over at once.</summary>
        public void Stage(Action action) => _staged.Add(action);

        public void Flush()
        {
            if (_staged.Count == 0) return;
            lock (_queue)
            {
                foreach (var action in _staged) _queue.Enqueue(action);
                Monitor.Pulse(_queue);
            }
            _staged.Clear();
        }

        public void Shutdown()
        {
            Flush();
            Enqueue(null);
        }

        public bool Join(TimeSpan timeout) => _thread.Join(timeout);

        private void Enqueue(Action? action)
        {
            lock (_queue)
            {
                _queue.Enqueue(action);
                if (_queue.Count == 1) Monitor.Pulse(_queue);
            }
        }

        private void Run()
        {
            ThreadScheduling.MakeCurrentThreadBatch();
            while (true)
            {
                Action? action;
                lock (_queue)
                {
                    while (_queue.Count == 0) Monitor.Wait(_queue);
                    action = _queue.Dequeue();
                }
                if (action is null) return;
                try
                {
                    action();
                }
                catch (Exception e)
                {
                    _logger.LogError(e, "Unhandled error on trial thread {Thread}", Name);
                }
            }
        }
    }
}
