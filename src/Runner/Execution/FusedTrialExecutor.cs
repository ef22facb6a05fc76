using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Gpu;
using TorchTrials.Gpu.Cuda;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Runs trials of fusable trainables in horizontally fused arrays (HFTA, Wang et al., MLSys 2021; repository
/// UofT-EcoSystem/hfta), every other trial exactly as <see cref="ConcurrentTrialExecutor"/> does (it is one, inside, on the
/// same allocator, thread pool, event channel, checkpoint store and incarnation counts). The variant implemented is HFTA's
/// "array of K models on one device" with lanes independent in time, which HFTA itself does not do (it fuses a fixed set
/// of trials for their whole run): here an array is a long-lived program on one slot whose lanes are filled and emptied one
/// trial at a time.
/// <para>
/// Arrays. Trials with the same trainable, <see cref="RegisteredTrainable.FusionKey"/> and resource request share an
/// array: one slot (the resource request is per array, not per lane), one <see cref="TrialThread"/>, up to
/// <see cref="FusionOptions.MaxMembers"/> lanes. Each lane holds one trial, which to the controller, schedulers, searchers,
/// stoppers, store and loggers is an ordinary trial: its own incarnation, grants, results (with the host's counters per
/// lane, <see cref="FusedArrayHost"/>: training_iteration, time_this_iter_s = the fused step's time, time_total_s, ...),
/// checkpoints and failures. Every operation on a lane is queued on the array's thread in order; training is a pump on
/// that thread: one fused step of the lanes that have steps granted, then the next step is queued behind whatever
/// operations arrived meanwhile, so a lane is set up, saved, restored or released between two steps of the others. A lane
/// whose grant is used up (or whose trial stopped) simply sits out the next steps. Results are published per lane in
/// chunks (one device read for every lane's metrics: the first step of a grant at once, then every 20 ms or 256 steps,
/// and at the end of each lane's grant), as <see cref="TrialSession.Train"/> does alone.
/// </para>
/// <para>
/// Pause, resume, exploit, persistence. A memory save of a lane is <see cref="FusedTrainable.SaveLane"/> (on the device;
/// laid out as the class's own checkpoint, with the host's counters), so a paused lane resumes in any compatible lane of
/// any array, or alone on a slot of its own when it is not fusable any more (fusion off on resume, another executor). A PBT
/// exploit whose donor checkpoint was saved from a lane of the same array, whose donor still holds that lane at the same
/// iteration, is <see cref="FusedTrainable.CopyLane"/> (slices copied on the device); otherwise the donor's checkpoint is
/// restored into the lane. Either way <see cref="FusedTrainable.ReconfigureLane"/> then applies the mutated config (the
/// copied state must not win over it). A persistent save writes the lane's state as the class's persistent checkpoint, so an
/// interrupted fused experiment resumes fused or alone. A lane's <see cref="LaneStepOutcome.Error"/> (a non-finite loss)
/// is that trial's <see cref="FailureEvent"/> only; an exception thrown by the fused step fails every lane in it.
/// </para>
/// <para>
/// Admission (how the executor and the controller cooperate). Schedulers keep choosing which waiting trial runs
/// (<see cref="ITrialScheduler.ChooseTrialToRun"/>: FIFO order, ASHA promotions, HyperBand brackets, PBT's least trained),
/// and they only ever start a trial for which <see cref="HasResourcesFor"/> is true; fusion is expressed entirely through
/// that answer, so no scheduler changes and each one's order among the trials that can start is kept. For a fusable trial
/// it is true when (1) an array of its key has a free lane (refill), or (2) a slot is free for a new array and, for a
/// pending trial, no pending trial of any key could instead refill a free lane of an existing array and its key is the one
/// with the most pending trials (ties: the key whose oldest pending trial is oldest) among keys whose slot fits now. Paused
/// trials (promotions, unpauses, PBT restarts) skip rule (2)'s key preference: the scheduler chose them deliberately. A
/// trial that trains alone is admitted as by the concurrent executor. The controller keeps
/// <see cref="PendingTrialsWanted"/> trials queued so arrays can fill: slots x K for a fusable trainable, and at least
/// <see cref="FusionOptions.Lookahead"/> when the search samples independently of results (grid, random), since with many
/// shape keys (72 in the sweep) a window of slots x K holds about one trial per key and every array runs one lane. An array whose
/// lanes are all empty keeps its slot while pending trials of its key wait (they refill it next step) and gives it back
/// otherwise, or at once when another key or an unfused trial needs the slot.
/// </para>
/// </summary>
public sealed class FusedTrialExecutor : ITrialExecutor
{
    private const int ChunkResults = 256;
    private const double ChunkMilliseconds = 20;
    private const int MaxArraysEstimated = 64;

    /// <summary>How long an array waits for lanes about to be answered before stepping the lanes it has (<see cref="AwaitsAnswers"/>).</summary>
    private static readonly TimeSpan AnswerWait = TimeSpan.FromMilliseconds(10);

    private readonly ConcurrentTrialExecutor _alone;
    private readonly TrainableRegistry _registry;
    private readonly FusionOptions _fusion;
    private readonly ILogger _logger;
    private readonly Dictionary<Trial, Member> _members = new();
    private readonly List<FusedArray> _arrays = new();
    private readonly Dictionary<Trial, ArrayKey?> _keys = new();
    private readonly Dictionary<ArrayKey, ArrayKey> _canonicalKeys = new();
    private readonly Dictionary<Resources, int> _slotEstimates = new();
    private readonly ConditionalWeakTable<MemoryCheckpoint, SavedLane> _savedLanes = new();
    private ITrialControl? _control;
    private Admission? _admission;
    private int _nextArrayId;
    private bool _disposed;

    /// <param name="threadsPerTrial">LibTorch intra-op threads per trial or array; null uses the slot's whole CPUs.</param>
    public FusedTrialExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, FusionOptions? fusion = null,
        ExecutorOptions? options = null, CudaStreamApi? streams = null, int? threadsPerTrial = null, ILogger? logger = null)
    {
        _fusion = fusion ?? new FusionOptions();
        _fusion.Validate();
        _registry = registry;
        _logger = logger ?? NullLogger.Instance;
        _alone = new ConcurrentTrialExecutor(allocator, registry, options, streams, threadsPerTrial, logger);
        _alone.OtherWork = () => _members.Count > 0;
    }

    public DeviceSlotAllocator Allocator => _alone.Allocator;

    public MemoryCheckpointStore CheckpointStore => _alone.CheckpointStore;

    public FusionOptions Fusion => _fusion;

    /// <summary>Arrays holding a slot now.</summary>
    public int ArrayCount => _arrays.Count;

    /// <summary>OS threads created so far (trials alone and arrays share them).</summary>
    public int ThreadsCreated => _alone.ThreadsCreated;

    public bool HasWork => _alone.HasWork;

    public void Attach(ITrialControl control) => _control = control;

    public int PendingTrialsWanted
    {
        get
        {
            if (_fusion.Fuse == FuseMode.Off || _control is null) return 0;
            var sample = _control.Trials.Count > 0 ? _control.Trials[^1] : null;
            if (sample is null || KeyOf(sample) is null) return 0;
            int window = SlotsFor(sample.Resources) * _fusion.MaxMembers;
            return _control.SearchSamplesIndependently ? Math.Max(window, _fusion.Lookahead) : window;
        }
    }

    public bool HasResourcesFor(Trial trial)
    {
        if (KeyOf(trial) is not { } key)
        {
            if (_alone.HasResourcesFor(trial)) return true;
            ReclaimIdleArrays(except: null, trial.Resources);
            return false;
        }
        if (FreeLaneOf(key) is not null) return true;
        if (trial.Status == TrialStatus.Pending)
        {
            var admission = _admission ??= Admit();
            // Only trials the controller has queued compete (a trial started directly, as in the executor's own tests, does not).
            if (admission.Queued.Contains(key) && (admission.CanRefill || !Equals(admission.NewArrayKey, key))) return false;
        }
        if (Allocator.CanAllocate(trial.Resources)) return true;
        ReclaimIdleArrays(except: key, trial.Resources);
        return false;
    }

    public bool Start(Trial trial, Checkpoint? checkpoint, TrainableContextFactory contextFactory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_members.ContainsKey(trial)) throw new InvalidOperationException($"trial {trial.Id} is already running");
        _admission = null;
        _keys.Remove(trial);
        if (KeyOf(trial) is not { } key)
        {
            if (_alone.Start(trial, checkpoint, contextFactory))
            {
                trial.Lane = null;
                return true;
            }
            ReclaimIdleArrays(except: null, trial.Resources);
            return false;
        }

        var entry = TrialSession.Lookup(_registry, trial);
        var array = FreeLaneOf(key);
        if (array is null)
        {
            string id = $"a{++_nextArrayId}";
            var slot = Allocator.TryAllocate(trial.Resources, id);
            if (slot is null)
            {
                _nextArrayId--;
                ReclaimIdleArrays(except: key, trial.Resources);
                return false;
            }
            array = OpenArray(id, key, slot, entry, contextFactory(trial, slot).TimeProvider);
        }

        int lane = Array.IndexOf(array.Occupants, null);
        var member = new Member(array, lane, trial, _alone.Incarnations.Next(trial));
        array.Occupants[lane] = member;
        _members[trial] = member;
        trial.Lane = $"{array.Id}.{lane}";
        trial.Slot = array.Slot.Placement;
        var context = contextFactory(trial, array.Slot) with { Cancellation = array.Cancellation.Token };
        var config = trial.Config;
        Stage(array, host =>
        {
            if (array.OpenError is { } error)
            {
                Fail(member, new TrialStartException($"trial {trial.Id}: could not start trainable '{trial.TrainableName}': {error.Message}", error));
                return;
            }
            array.Lanes[lane] = member;
            array.Remaining[lane] = 0;
            array.AwaitingSince[lane] = Stopwatch.GetTimestamp();
            try
            {
                host!.SetupLane(lane, context, config);
            }
            catch (Exception e)
            {
                Fail(member, new TrialStartException($"trial {trial.Id}: could not start trainable '{trial.TrainableName}' in lane {trial.Lane}: {e.Message}", e));
            }
        });
        if (checkpoint is MemoryCheckpoint memory)
        {
            var lease = memory.Retain();
            LaneOp(member, host =>
            {
                using (lease)
                {
                    try
                    {
                        _alone.WaitForProducer(memory, array.Slot);
                        host.RestoreLane(lane, memory);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        throw new InvalidOperationException($"trial {trial.Id}: restoring its memory checkpoint failed: {e.Message}", e);
                    }
                }
            });
        }
        else if (checkpoint is PersistentCheckpoint persistent)
        {
            trial.IsRestoring = true;
            LaneOp(member, host =>
            {
                host.RestoreLane(lane, persistent);
                _alone.Publish(new RestoreEvent(trial, member.Incarnation));
            });
        }
        return true;
    }

    public void ContinueTraining(Trial trial, int steps = 1)
    {
        if (!_members.TryGetValue(trial, out var member))
        {
            _alone.ContinueTraining(trial, steps);
            return;
        }
        if (member.TrainingGranted) return;
        member.TrainingGranted = true;
        int granted = Math.Max(1, steps);
        LaneOp(member, _ =>
        {
            var array = member.Array;
            array.Remaining[member.Lane] = granted;
            array.FreshGrant[member.Lane] = true;
            array.AwaitingSince[member.Lane] = 0;
            if (array.Pumping) return;
            array.Pumping = true;
            array.Thread.Post(() => Pump(array));
        });
    }

    public MemoryCheckpoint SaveToMemory(Trial trial, TrialResult? result = null)
    {
        if (!_members.TryGetValue(trial, out var member)) return _alone.SaveToMemory(trial, result);
        var checkpoint = CheckpointStore.Add(MemoryCheckpoint.Pending(result ?? trial.LastResult));
        var saved = new SavedLane(member);
        _savedLanes.AddOrUpdate(checkpoint, saved);
        LaneOp(member, host =>
        {
            try
            {
                checkpoint.ProducerStream = member.Array.Slot.Stream;
                saved.Iteration = host.IterationOf(member.Lane);
                checkpoint.Complete(host.SaveLane(member.Lane));
            }
            catch (Exception e)
            {
                checkpoint.Fail(e);
                throw;
            }
        }, onSkipped: e => checkpoint.Fail(e));
        return checkpoint;
    }

    public void SaveToDisk(Trial trial, string directory)
    {
        if (!_members.TryGetValue(trial, out var member))
        {
            _alone.SaveToDisk(trial, directory);
            return;
        }
        var result = trial.LastResult;
        LaneOp(member, host =>
        {
            PersistentCheckpoint saved;
            using (var state = host.SaveLane(member.Lane))
                saved = PersistentCheckpoint.Write(directory, state, result);
            _alone.Publish(new SaveEvent(trial, member.Incarnation, saved));
        });
    }

    public void Exploit(Trial trial, Checkpoint donor, TrialConfig config)
    {
        if (!_members.TryGetValue(trial, out var member))
        {
            _alone.Exploit(trial, donor, config);
            return;
        }
        var memory = donor as MemoryCheckpoint;
        var lease = memory?.Retain();
        var saved = memory is not null && _savedLanes.TryGetValue(memory, out var s) ? s : null;
        LaneOp(member, host =>
        {
            using (lease)
            {
                var array = member.Array;
                if (saved is { } from && from.Member.Array == array && array.Lanes[from.Member.Lane] == from.Member
                    && from.Iteration is { } at && host.IterationOf(from.Member.Lane) == at && from.Member.Lane != member.Lane)
                {
                    host.CopyLane(from.Member.Lane, member.Lane);
                    Interlocked.Increment(ref array.LaneCopies);
                }
                else
                {
                    if (memory is not null) _alone.WaitForProducer(memory, array.Slot);
                    host.RestoreLane(member.Lane, donor);
                }
                if (!host.ReconfigureLane(member.Lane, config))
                    throw new InvalidOperationException($"the fused array of trial {trial.Id} cannot take a new config in lane {trial.Lane}, so PBT cannot explore it");
            }
        });
    }

    public void Stop(Trial trial, bool error)
    {
        _admission = null;
        if (!_members.Remove(trial, out var member))
        {
            _alone.Stop(trial, error);
            return;
        }
        member.StopRequested = true;
        member.TrainingGranted = false;
        var array = member.Array;
        array.Occupants[member.Lane] = null;
        Stage(array, host =>
        {
            if (array.Lanes[member.Lane] != member) return;
            Flush(array, host, ending: new HashSet<int> { member.Lane }, only: member.Lane);
            array.Remaining[member.Lane] = 0;
            array.Lanes[member.Lane] = null;
            try
            {
                host?.ReleaseLane(member.Lane);
            }
            catch (Exception e)
            {
                _logger.LogWarning(e, "Releasing lane {Lane} of trial {TrialId} failed", member.Lane, trial.Id);
            }
        });
        if (array.IsEmpty && (array.OpenError is not null || !PendingOf(array.Key))) Retire(array);
    }

    public void Dispatch()
    {
        _admission = null;
        _alone.Dispatch();
    }

    public ExecutorEvent? NextEvent(TimeSpan timeout)
    {
        _admission = null;
        foreach (var array in _arrays.Where(a => a.IsEmpty && !PendingOf(a.Key)).ToList()) Retire(array);
        var ev = _alone.NextEvent(timeout);
        if (ev is ResultEvent { EndOfTraining: true } or FailureEvent && _members.TryGetValue(ev.Trial, out var member) && member.Incarnation == ev.Incarnation)
            member.TrainingGranted = false;
        return ev;
    }

    public IReadOnlyList<Trial> TakeLostTrials()
    {
        var lost = Allocator.TakeLostSlots();
        if (lost.Count == 0) return Array.Empty<Trial>();
        var trials = new List<Trial>();
        var others = new List<DeviceSlot>();
        foreach (var slot in lost)
        {
            var array = _arrays.FirstOrDefault(a => a.Slot == slot);
            if (array is null)
            {
                others.Add(slot);
                continue;
            }
            array.Cancellation.Cancel();
            trials.AddRange(array.Occupants.OfType<Member>().Select(m => m.Trial));
        }
        trials.AddRange(_alone.TrialsOnLost(others));
        return trials;
    }

    public int IncarnationOf(Trial trial) => _alone.Incarnations.Of(trial);

    /// <summary>Lane-to-lane copies done for PBT exploits so far (the rest restored a checkpoint).</summary>
    public int LaneCopies => _arrays.Sum(a => Volatile.Read(ref a.LaneCopies)) + _retiredLaneCopies;

    private int _retiredLaneCopies;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _members.Clear();
        foreach (var array in _arrays.ToList()) Retire(array);
        _alone.Dispose();
    }

    private ArrayKey? KeyOf(Trial trial)
    {
        if (_fusion.Fuse == FuseMode.Off) return null;
        if (_keys.TryGetValue(trial, out var known)) return known;
        ArrayKey? key = null;
        if (_registry.TryGet(trial.TrainableName, out var entry) && entry.FusionKey?.Invoke(trial.Config) is { } fusionKey)
        {
            // One instance per key, so the admission's per-trial lookups compare references, not key strings and resources.
            key = new ArrayKey(trial.TrainableName, fusionKey, trial.Resources);
            if (!_canonicalKeys.TryAdd(key, key)) key = _canonicalKeys[key];
        }
        _keys[trial] = key;
        return key;
    }

    /// <summary>The fullest working array of <paramref name="key"/> with a free lane (asked per waiting trial, so no LINQ).</summary>
    private FusedArray? FreeLaneOf(ArrayKey key)
    {
        FusedArray? best = null;
        int bestOccupied = -1;
        foreach (var array in _arrays)
        {
            if (array.Key != key || array.OpenError is not null) continue; // a record's == compares references first
            int occupied = 0;
            foreach (var occupant in array.Occupants)
                if (occupant is not null) occupied++;
            if (occupied < array.Capacity && occupied > bestOccupied)
            {
                best = array;
                bestOccupied = occupied;
            }
        }
        return best;
    }

    private bool PendingOf(ArrayKey key) => _control?.PendingTrials.Any(t => KeyOf(t) == key) ?? false;

    /// <summary>What the pending trials say now: can any refill a free lane, and which key a free slot opens an array for.</summary>
    private Admission Admit()
    {
        bool refill = false;
        var counts = new Dictionary<ArrayKey, (int Count, int Oldest)>(ReferenceEqualityComparer.Instance);
        int position = 0;
        foreach (var trial in _control?.PendingTrials ?? [])
        {
            position++;
            if (KeyOf(trial) is not { } key) continue;
            if (counts.TryGetValue(key, out var c))
            {
                counts[key] = (c.Count + 1, c.Oldest);
                continue;
            }
            if (FreeLaneOf(key) is not null) refill = true;
            counts[key] = (1, position);
        }
        var best = counts
            .Where(kv => Allocator.CanAllocate(kv.Key.Resources))
            .OrderByDescending(kv => kv.Value.Count).ThenBy(kv => kv.Value.Oldest)
            .Select(kv => (ArrayKey?)kv.Key).FirstOrDefault();
        return new Admission(refill, best, counts.Keys.ToHashSet<ArrayKey>(ReferenceEqualityComparer.Instance));
    }

    /// <summary>How many slots of <paramref name="request"/> this machine holds when idle (counted on a scratch allocator).</summary>
    private int SlotsFor(Resources request)
    {
        if (_slotEstimates.TryGetValue(request, out var known)) return known;
        var scratch = new DeviceSlotAllocator(Allocator.Inventory);
        int count = 0;
        try
        {
            while (count < MaxArraysEstimated && scratch.TryAllocate(request, "estimate") is not null) count++;
        }
        catch (ResourceRequestException)
        {
            count = 0;
        }
        return _slotEstimates[request] = Math.Max(1, count);
    }

    private FusedArray OpenArray(string id, ArrayKey key, DeviceSlot slot, RegisteredTrainable entry, TimeProvider clock)
    {
        var array = new FusedArray(id, key, slot, _alone.Threads.Rent(), _fusion.MaxMembers);
        _arrays.Add(array);
        var context = new FusedArrayContext
        {
            ArrayId = id,
            Key = key.FusionKey,
            Capacity = _fusion.MaxMembers,
            Slot = slot,
            Cancellation = array.Cancellation.Token,
            Logger = _logger,
            TimeProvider = clock,
        };
        int threads = _alone.ThreadsPerTrial ?? slot.CpuThreads;
        _alone.Threads.Stage(array.Thread, () =>
        {
            try
            {
                _alone.Bind(slot, threads);
                array.Host = FusedArrayHost.Create(entry, context);
            }
            catch (Exception e)
            {
                array.OpenError = e;
            }
        });
        return array;
    }

    /// <summary>Queues an array operation on its thread (runs after what is queued there, at the next dispatch).</summary>
    private void Stage(FusedArray array, Action<FusedArrayHost?> op) =>
        _alone.Threads.Stage(array.Thread, () => op(array.Host));

    /// <summary>
    /// Queues an operation on a lane; a failure is the lane's trial's <see cref="FailureEvent"/> and later operations of
    /// that trial are skipped (<paramref name="onSkipped"/> tells whoever waits on one), as for a trial alone.
    /// </summary>
    private void LaneOp(Member member, Action<FusedArrayHost> op, Action<Exception>? onSkipped = null)
    {
        Stage(member.Array, host =>
        {
            if (member.Broken || host is null || member.Array.Lanes[member.Lane] != member)
            {
                onSkipped?.Invoke(new InvalidOperationException($"trial {member.Trial.Id} skipped an operation after an earlier failure"));
                return;
            }
            try
            {
                op(host);
            }
            catch (Exception e)
            {
                onSkipped?.Invoke(e);
                Fail(member, e);
            }
        });
    }

    /// <summary>Marks the lane's trial broken and reports it (array thread); the lane takes no more steps for it.</summary>
    private void Fail(Member member, Exception error)
    {
        member.Broken = true;
        member.Array.Remaining[member.Lane] = 0;
        bool lost = member.Array.Slot.IsLost;
        _alone.Publish(new FailureEvent(member.Trial, member.Incarnation, error is OperationCanceledException && lost
            ? new InvalidOperationException($"the device of trial {member.Trial.Id} was lost", error) : error, lost));
    }

    /// <summary>
    /// One fused step of the lanes with steps granted (array thread), then the next one queued behind whatever operations
    /// arrived meanwhile; stops when no lane has steps left.
    /// </summary>
    private void Pump(FusedArray array)
    {
        var host = array.Host;
        var active = new List<int>();
        for (int lane = 0; lane < array.Capacity; lane++)
        {
            var member = array.Lanes[lane];
            if (member is null || array.Remaining[lane] <= 0) continue;
            if (member.StopRequested || member.Broken)
            {
                array.Remaining[lane] = 0;
                continue;
            }
            active.Add(lane);
        }
        if (host is null)
        {
            array.Pumping = false;
            return;
        }
        if (active.Count == 0)
        {
            Flush(array, host, ending: array.Chunk.Select(c => c.Lane).ToHashSet());
            array.Pumping = false;
            return;
        }
        if (AwaitsAnswers(array))
        {
            // Lanes set up or at the end of their grant are about to be answered (the controller handles one event per
            // step and dispatches each answer on its own): stepping the granted lanes now would step them apart from the
            // others for the rest of their runs, an array of one-lane steps. Wait briefly for the rest to be answered.
            Thread.Sleep(1);
            array.Thread.Post(() => Pump(array));
            return;
        }

        bool due = false;
        var ending = new HashSet<int>();
        IReadOnlyList<LaneStep> steps;
        try
        {
            steps = host.Step(active);
        }
        catch (Exception e)
        {
            Flush(array, host, ending: new HashSet<int>());
            foreach (int lane in active) Fail(array.Lanes[lane]!, e);
            array.Thread.Post(() => Pump(array));
            return;
        }
        foreach (var step in steps)
        {
            int lane = step.Lane;
            var member = array.Lanes[lane]!;
            if (step.Error is { } error)
            {
                // The results before the failure arrive first, as alone.
                Flush(array, host, ending: new HashSet<int>(), only: lane);
                Fail(member, error);
                continue;
            }
            var pending = step.Pending!;
            array.Chunk.Add((lane, member, pending));
            if (array.FreshGrant[lane])
            {
                array.FreshGrant[lane] = false;
                due = true;
            }
            if (--array.Remaining[lane] <= 0 || pending.Done || pending.ShouldCheckpoint)
            {
                array.Remaining[lane] = 0;
                ending.Add(lane);
                due = true;
            }
        }
        if (array.ChunkStart == 0) array.ChunkStart = Stopwatch.GetTimestamp();
        if (due || array.Chunk.Count >= ChunkResults || Stopwatch.GetElapsedTime(array.ChunkStart).TotalMilliseconds >= ChunkMilliseconds)
            Flush(array, host, ending);
        array.Thread.Post(() => Pump(array));
    }

    /// <summary>Reads the chunk's metrics in one transfer and publishes each lane's results; <paramref name="ending"/> lanes end their grant.</summary>
    private void Flush(FusedArray array, FusedArrayHost? host, HashSet<int> ending, int? only = null)
    {
        var chunk = only is { } l ? array.Chunk.Where(c => c.Lane == l).ToList() : array.Chunk.ToList();
        if (chunk.Count == 0 || host is null) return;
        if (only is not null) array.Chunk.RemoveAll(c => c.Lane == only);
        else
        {
            array.Chunk.Clear();
            array.ChunkStart = 0;
        }
        IReadOnlyList<TrialResult> results;
        try
        {
            results = host!.Materialize(chunk.Select(c => (c.Lane, c.Pending)).ToList());
        }
        catch (Exception e)
        {
            foreach (var member in chunk.Select(c => c.Member).Distinct()) Fail(member, e);
            return;
        }
        var byMember = new Dictionary<Member, List<TrialResult>>();
        for (int i = 0; i < chunk.Count; i++)
        {
            if (!byMember.TryGetValue(chunk[i].Member, out var list)) byMember[chunk[i].Member] = list = new List<TrialResult>();
            list.Add(results[i]);
        }
        long now = Stopwatch.GetTimestamp();
        foreach (var (member, list) in byMember)
        {
            bool end = ending.Contains(member.Lane) || array.Remaining[member.Lane] <= 0;
            if (end && array.Lanes[member.Lane] == member) array.AwaitingSince[member.Lane] = now;
            _alone.Publish(new ResultEvent(member.Trial, member.Incarnation, list) { EndOfTraining = end });
        }
    }

    /// <summary>
    /// True when some lane of <paramref name="array"/> holds a live trial without steps, set up or at the end of its grant
    /// less than <see cref="AnswerWait"/> ago: its answer (more steps, stop, pause) is on its way (array thread).
    /// </summary>
    private static bool AwaitsAnswers(FusedArray array)
    {
        long now = Stopwatch.GetTimestamp();
        for (int lane = 0; lane < array.Capacity; lane++)
        {
            var member = array.Lanes[lane];
            long since = array.AwaitingSince[lane];
            if (member is null || since == 0 || array.Remaining[lane] > 0 || member.StopRequested || member.Broken) continue;
            if (Stopwatch.GetElapsedTime(since, now) < AnswerWait) return true;
        }
        return false;
    }

    /// <summary>Disposes the array on its thread, frees its slot and returns the thread.</summary>
    private void Retire(FusedArray array)
    {
        if (!_arrays.Remove(array)) return;
        _retiredLaneCopies += Volatile.Read(ref array.LaneCopies);
        foreach (var member in array.Occupants.OfType<Member>())
        {
            member.StopRequested = true;
            _members.Remove(member.Trial);
        }
        array.Cancellation.Cancel();
        _alone.BeginRelease();
        _alone.Threads.Stage(array.Thread, () =>
        {
            try
            {
                Flush(array, array.Host, ending: array.Chunk.Select(c => c.Lane).ToHashSet());
                array.Host?.Dispose();
            }
            catch (Exception e)
            {
                _logger.LogWarning(e, "Disposing fused array {ArrayId} failed", array.Id);
            }
            finally
            {
                array.Host = null;
                if (!array.Slot.Released) Allocator.Release(array.Slot);
                array.Cancellation.Dispose();
                _alone.Threads.Return(array.Thread);
                _alone.SlotFreed();
            }
        });
    }

    /// <summary>Gives back the slots of empty arrays (other than <paramref name="except"/>'s) when a request cannot be placed.</summary>
    private void ReclaimIdleArrays(ArrayKey? except, Resources request)
    {
        if (Allocator.CanAllocate(request)) return;
        foreach (var array in _arrays.Where(a => a.IsEmpty && a.Key != except).ToList()) Retire(array);
    }

    private sealed record ArrayKey(string Trainable, string FusionKey, Resources Resources);

    private sealed record Admission(bool CanRefill, ArrayKey? NewArrayKey, HashSet<ArrayKey> Queued);

    /// <summary>A memory checkpoint saved from a lane: who saved it and at which iteration (set on the array thread).</summary>
    private sealed class SavedLane(Member member)
    {
        public Member Member { get; } = member;

        public long? Iteration { get; set; }
    }

    /// <summary>One trial in one lane (one incarnation).</summary>
    private sealed class Member(FusedArray array, int lane, Trial trial, int incarnation)
    {
        private volatile bool _stopRequested;
        private volatile bool _broken;

        public FusedArray Array { get; } = array;

        public int Lane { get; } = lane;

        public Trial Trial { get; } = trial;

        public int Incarnation { get; } = incarnation;

        /// <summary>Steps were granted and their last result has not been seen yet (controller thread only).</summary>
        public bool TrainingGranted { get; set; }

        public bool StopRequested
        {
            get => _stopRequested;
            set => _stopRequested = value;
        }

        public bool Broken
        {
            get => _broken;
            set => _broken = value;
        }
    }

    /// <summary>An array: its slot and thread; <see cref="Occupants"/> is the controller's view, the rest the array thread's.</summary>
    private sealed class FusedArray(string id, ArrayKey key, DeviceSlot slot, TrialThread thread, int capacity)
    {
        public int LaneCopies;

        public string Id { get; } = id;

        public ArrayKey Key { get; } = key;

        public DeviceSlot Slot { get; } = slot;

        public TrialThread Thread { get; } = thread;

        public int Capacity { get; } = capacity;

        public CancellationTokenSource Cancellation { get; } = new();

        /// <summary>Lanes as the controller assigned them (controller thread).</summary>
        public Member?[] Occupants { get; } = new Member?[capacity];

        public bool IsEmpty => Occupants.All(o => o is null);

        public FusedArrayHost? Host { get; set; }

        public Exception? OpenError { get; set; }

        /// <summary>Lanes as the array thread set them up.</summary>
        public Member?[] Lanes { get; } = new Member?[capacity];

        public int[] Remaining { get; } = new int[capacity];

        public bool[] FreshGrant { get; } = new bool[capacity];

        /// <summary>When each lane last became live without steps (set up, or its grant used up); 0 when it has steps or none is due.</summary>
        public long[] AwaitingSince { get; } = new long[capacity];

        public bool Pumping { get; set; }

        public List<(int Lane, Member Member, PendingResult Pending)> Chunk { get; } = new();

        public long ChunkStart { get; set; }
    }
}

