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
/// Runs each trial on a dedicated OS thread bound to its slot (a <see cref="TrialThread"/> from a
/// <see cref="TrialThreadPool"/>): TorchSharp's dispose scopes and LibTorch's current CUDA stream are thread-local, so a
/// trial never hops threads. Before touching tensors the thread sets LibTorch's intra-op thread count to the slot's
/// CPUs (so N concurrent trials do not oversubscribe the cores) and, on CUDA, makes the slot's own stream current;
/// nothing here calls the device-wide synchronize. Operations are queued per trial and run in order (training, memory
/// and disk saves, restores, exploits, stop); results and completions flow back through one event channel that the
/// controller drains, so the controller never blocks on a single trial. Training, reuse and failure reporting are the
/// shared <see cref="TrialSession"/>, <see cref="TrialReuseCache{TRun}"/> and <see cref="IncarnationCounter"/>.
/// </summary>
public sealed class ConcurrentTrialExecutor : ITrialExecutor
{
    private readonly TrainableRegistry _registry;
    private readonly ILogger _logger;
    private readonly CudaStreamApi? _streams;
    private readonly Dictionary<Trial, Live> _live = new();
    private readonly Dictionary<DeviceSlot, Live> _bySlot = new();
    private readonly IncarnationCounter _incarnations = new();
    private readonly TrialReuseCache<Live> _reuse;
    private readonly ConcurrentQueue<ExecutorEvent> _events = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly TrialThreadPool _threads;
    private int _releasing;
    private bool _disposed;

    /// <param name="threadsPerTrial">LibTorch intra-op threads per trial; null uses the slot's whole CPUs (at least one).</param>
    public ConcurrentTrialExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions? options = null,
        CudaStreamApi? streams = null, int? threadsPerTrial = null, ILogger? logger = null)
    {
        Allocator = allocator;
        _registry = registry;
        options ??= new ExecutorOptions();
        _streams = streams;
        ThreadsPerTrial = threadsPerTrial;
        _logger = logger ?? NullLogger.Instance;
        _threads = new TrialThreadPool(_logger);
        _reuse = new TrialReuseCache<Live>(options.ReuseTrainables, live => live.Session, live => Retire(live));
        CheckpointStore = ExecutorCheckpointStore.Create(options, streams);
    }

    public DeviceSlotAllocator Allocator { get; }

    public MemoryCheckpointStore CheckpointStore { get; }

    public int? ThreadsPerTrial { get; }

    /// <summary>OS threads created so far (they are reused across trials).</summary>
    public int ThreadsCreated => _threads.ThreadsCreated;

    public bool HasWork => _live.Count > 0 || Volatile.Read(ref _releasing) > 0 || !_events.IsEmpty || (OtherWork?.Invoke() ?? false);

    /// <summary>Work of trials an enclosing executor runs on this one's threads and event channel (the fused executor's arrays).</summary>
    internal Func<bool>? OtherWork { get; set; }

    /// <summary>The incarnations of every trial, shared with an enclosing executor so a trial's count goes on wherever it runs.</summary>
    internal IncarnationCounter Incarnations => _incarnations;

    internal TrialThreadPool Threads => _threads;

    public bool HasResourcesFor(Trial trial) => _reuse.HasResourcesFor(trial, Allocator);

    public bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_live.ContainsKey(trial)) throw new InvalidOperationException($"trial {trial.Id} is already running");

        Live live;
        if (_reuse.TakeFor(trial) is { } cached)
        {
            live = cached;
            live.Renew(trial, _incarnations.Next(trial));
            var context = contextFactory(trial, live.Session.Slot) with { Cancellation = live.Cancellation.Token };
            var reset = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
            live.Thread.Post(() =>
            {
                try
                {
                    live.Session.ResetForReuse(context);
                    reset.SetResult(null);
                }
                catch (Exception e)
                {
                    reset.SetResult(e);
                }
            });
            // Reuse is decided at start, as in Ray: wait for the reset (a config swap, normally instant).
            if (reset.Task.GetAwaiter().GetResult() is { } failure)
            {
                Retire(live);
                throw failure as TrialStartException ?? new TrialStartException(failure.Message, failure);
            }
        }
        else
        {
            var slot = Allocator.TryAllocate(trial.Resources, trial.Id);
            if (slot is null) return false;
            RegisteredTrainable entry;
            try
            {
                entry = TrialSession.Lookup(_registry, trial);
            }
            catch
            {
                Allocator.Release(slot);
                throw;
            }
            live = new Live(new TrialSession(trial, slot, _incarnations.Next(trial)), _threads.Rent());
            var context = contextFactory(trial, slot) with { Cancellation = live.Cancellation.Token };
            int threads = ThreadsPerTrial ?? slot.CpuThreads;
            var session = live.Session;
            int incarnation = session.Incarnation;
            _threads.Stage(live.Thread, () =>
            {
                try
                {
                    Bind(slot, threads);
                    session.Setup(entry, context);
                }
                catch (Exception e)
                {
                    Publish(session.Fail(trial, incarnation, e));
                }
            });
        }

        _live[trial] = live;
        _bySlot[live.Session.Slot] = live;
        trial.Slot = live.Session.Slot.Placement;
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
        live.Session.StopRequested = false;
        PostOp(live, session => session.Train(Math.Max(1, steps),
            (results, last) => Publish(new ResultEvent(session.Trial, session.Incarnation, results) { EndOfTraining = last })));
    }

    public MemoryCheckpoint SaveToMemory(Trial trial, TrialResult? result = null)
    {
        var live = LiveOf(trial);
        var checkpoint = CheckpointStore.Add(MemoryCheckpoint.Pending(result ?? trial.LastResult));
        PostOp(live, session => session.SaveToMemory(checkpoint), onSkipped: e => checkpoint.Fail(e));
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
        live.Session.StopRequested = true;
        live.TrainingGranted = false;
        if (!_reuse.TryKeep(live, error)) Retire(live);
    }

    public void Dispatch() => _threads.Dispatch();

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
                if (ev is ResultEvent { EndOfTraining: true } or FailureEvent && _live.TryGetValue(ev.Trial, out var live) && live.Session.Incarnation == ev.Incarnation)
                    live.TrainingGranted = false;
                return ev;
            }
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (remaining <= 0 || !HasWork) return null;
            _signal.Wait(TimeSpan.FromSeconds(Math.Min(remaining / (double)Stopwatch.Frequency, 0.25)));
        }
    }

    public IReadOnlyList<Trial> TakeLostTrials() => TrialsOnLost(Allocator.TakeLostSlots());

    /// <summary>The running trials on <paramref name="lost"/> slots, cancelled; a cached run on one is dropped.</summary>
    internal IReadOnlyList<Trial> TrialsOnLost(IReadOnlyList<DeviceSlot> lost)
    {
        if (lost.Count == 0) return Array.Empty<Trial>();
        var trials = new List<Trial>();
        foreach (var slot in lost)
        {
            if (_bySlot.TryGetValue(slot, out var live) && _live.ContainsKey(live.Session.Trial))
            {
                live.Cancellation.Cancel();
                trials.Add(live.Session.Trial);
            }
            else
            {
                _reuse.DropIfOn(slot);
            }
        }
        return trials;
    }

    public int IncarnationOf(Trial trial) => _incarnations.Of(trial);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var live in _live.Values.ToList()) Retire(live);
        _live.Clear();
        _reuse.Drop();
        _threads.Shutdown(TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Queues an operation on the trial's thread; a failure becomes a <see cref="FailureEvent"/> for the trial and marks
    /// it broken, so later operations are skipped (and <paramref name="onSkipped"/> tells whoever waits on one).
    /// </summary>
    private void PostOp(Live live, Action<TrialSession> op, Action<Exception>? onSkipped = null)
    {
        var session = live.Session;
        _threads.Stage(live.Thread, () =>
        {
            if (session.Broken)
            {
                // Nothing may wait forever on an operation that will not run (a pending checkpoint, say).
                onSkipped?.Invoke(new InvalidOperationException($"trial {session.Trial.Id} skipped an operation after an earlier failure"));
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
                onSkipped?.Invoke(e);
                Publish(session.Fail(trial, incarnation, e));
            }
        });
    }

    /// <summary>Disposes the trainable on its thread, frees the slot, and returns the thread to the pool.</summary>
    private void Retire(Live live)
    {
        _bySlot.Remove(live.Session.Slot);
        live.Cancellation.Cancel();
        Interlocked.Increment(ref _releasing);
        _threads.Stage(live.Thread, () =>
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
                if (!live.Session.Slot.Released) Allocator.Release(live.Session.Slot);
                live.Cancellation.Dispose();
                _threads.Return(live.Thread);
                Publish(SlotFreedEvent.Instance);
            }
        });
    }

    /// <summary>A slot is being freed on a trial thread: <see cref="HasWork"/> holds until <see cref="SlotFreed"/>.</summary>
    internal void BeginRelease() => Interlocked.Increment(ref _releasing);

    /// <summary>The slot announced by <see cref="BeginRelease"/> went back to the allocator (from any thread).</summary>
    internal void SlotFreed() => Publish(SlotFreedEvent.Instance);

    internal void Publish(ExecutorEvent ev)
    {
        _events.Enqueue(ev);
        _signal.Release();
    }

    internal void Bind(DeviceSlot slot, int threads)
    {
        if (torch.get_num_threads() != threads) torch.set_num_threads(threads);
        if (slot.Stream is { } stream) _streams?.SetCurrent(stream);
    }

    /// <summary>A checkpoint captured on another trial's stream must be complete before this thread reads it.</summary>
    internal void WaitForProducer(MemoryCheckpoint checkpoint, DeviceSlot slot)
    {
        if (checkpoint.ProducerStream is { } producer && producer != slot.Stream) _streams?.Synchronize(producer);
    }

    private Live LiveOf(Trial trial) =>
        _live.TryGetValue(trial, out var live) ? live : throw new InvalidOperationException($"trial {trial.Id} is not running");

    /// <summary>Controller-side record of a trial running on its thread.</summary>
    private sealed class Live(TrialSession session, TrialThread thread)
    {
        public TrialSession Session { get; } = session;

        public TrialThread Thread { get; } = thread;

        public CancellationTokenSource Cancellation { get; private set; } = new();

        /// <summary>Steps were granted and their last result has not been seen yet (controller thread only).</summary>
        public bool TrainingGranted { get; set; }

        public void Renew(Trial trial, int incarnation)
        {
            Cancellation.Dispose();
            Cancellation = new CancellationTokenSource();
            Session.Renew(trial, incarnation);
            TrainingGranted = false;
        }
    }

    /// <summary>Wakes the controller when a slot went back to the allocator; never returned to the controller.</summary>
    private sealed record SlotFreedEvent() : ExecutorEvent(null!, 0)
    {
        public static SlotFreedEvent Instance { get; } = new();
    }
}
