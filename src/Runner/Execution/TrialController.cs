using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Gpu;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>How one trial's unrecoverable error affects the others (Ray's fail_fast).</summary>
public enum FailFastMode
{
    /// <summary>Other trials go on.</summary>
    Off,

    /// <summary>Stop every other trial (TERMINATED) and end the experiment.</summary>
    StopAll,

    /// <summary>Raise the error out of <see cref="TrialController.Step"/> at once, before the trial's status changes.</summary>
    Raise,
}

/// <summary>What happens to each kind of trial when an experiment resumes (Ray's Tuner.restore options).</summary>
public sealed record ResumeOptions
{
    /// <summary>Pending, running and paused trials continue from their latest persistent checkpoint.</summary>
    public bool ResumeUnfinished { get; init; } = true;

    /// <summary>Errored trials continue from their latest persistent checkpoint.</summary>
    public bool ResumeErrored { get; init; }

    /// <summary>Errored trials start again from scratch.</summary>
    public bool RestartErrored { get; init; }

    /// <summary>Receives each problem found in what the killed run left (a damaged checkpoint, named), besides the log.</summary>
    public Action<string>? OnWarning { get; init; }
}

/// <summary>Settings of the controller loop.</summary>
public sealed record ControllerOptions
{
    public string ExperimentName { get; init; } = "experiment";

    /// <summary>The experiment's folder: store, trial folders, checkpoints. Defaults to a new folder under the system temp directory.</summary>
    public string? ExperimentDirectory { get; init; }

    public FailFastMode FailFast { get; init; } = FailFastMode.Off;

    /// <summary>The metric schedulers and searchers optimise, when they were not given one.</summary>
    public string? Metric { get; init; }

    public MetricMode? Mode { get; init; }

    /// <summary>At most this many trials run at once (Ray's max_concurrent_trials); null leaves it to the resources.</summary>
    public int? MaxConcurrentTrials { get; init; }

    /// <summary>Trials the search algorithm may queue ahead of the free slots.</summary>
    public int MaxPendingTrials { get; init; } = 16;

    /// <summary>How often queued store writes are committed.</summary>
    public TimeSpan StoreFlushInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long <see cref="TrialController.Step"/> waits for an event before returning.</summary>
    public TimeSpan EventWait { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Iterations a trial may run ahead of the controller when the scheduler allows it (FIFO does); 1 is lock-step.</summary>
    public int ResultBufferLength { get; init; } = 1;

    /// <summary>
    /// When every decision up to a trial's iteration cap is known to be Continue (a scheduler that always continues, no
    /// stopper, stop criteria on training_iteration only), grant all those steps at once so the trial's thread never waits
    /// for the controller between steps. Results still arrive and are processed one by one, in order, so nothing decided
    /// differs from lock-step; only the hand-offs go. The inline executor runs one step per grant regardless.
    /// </summary>
    public bool RunAhead { get; init; }

    /// <summary>Base seed; each trial's seed derives from it and the trial's sequence.</summary>
    public long Seed { get; init; }
}

/// <summary>Raised by <see cref="TrialController.Step"/> when the experiment cannot go on (Ray's TuneError).</summary>
public sealed class TrialControllerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Raised with fail-fast "raise" when a trial fails.</summary>
public sealed class TrialFailedException(Trial trial, Exception error)
    : Exception($"trial {trial.Id} failed: {error.Message}", error)
{
    public Trial Trial { get; } = trial;
}

/// <summary>
/// The event loop (Ray's TrialRunner). Each <see cref="Step"/> either starts one trial or processes one event from
/// the executor: a result (routed through stopper and scheduler into CONTINUE / PAUSE / STOP), a finished save or
/// restore, or a failure (recovered from the latest checkpoint while max_failures allows). Checkpoint decisions are
/// cached while a persistent save is in flight, exactly as Ray does. The store receives every change and is
/// committed periodically, so a killed run resumes with <see cref="Resume"/>.
/// </summary>
public sealed class TrialController : ITrialControl, IDisposable
{
    private readonly ITrialExecutor _executor;
    private readonly ISearchAlgorithm _search;
    private readonly ITrialScheduler _scheduler;
    private readonly IStopper _stopper;
    private readonly List<ITrialCallback> _callbacks;
    private readonly IExperimentStore _store;
    private readonly ControllerOptions _options;
    private readonly ILogger _logger;
    private readonly List<Trial> _trials = new();
    private readonly Dictionary<string, Trial> _byId = new(StringComparer.Ordinal);
    private readonly OrderedTrialSet _pending = new();
    private readonly OrderedTrialSet _paused = new();
    private readonly Dictionary<Trial, SchedulerDecision> _cachedDecisions = new();
    private readonly Queue<(Trial Trial, Exception Error)> _lostTrials = new();
    private readonly TrainableRegistry _registry;
    private (Trial? Trial, TrialResult? Result) _routing;
    private TrialResult? _exploitedResult;
    private readonly Dictionary<Trial, long> _rollbackAfterResult = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _unfinished;
    private int _running;
    private long _sequence;
    private long _lastFlushTicks;
    private int _iteration;
    private bool _disposed;

    public TrialController(
        ITrialExecutor executor,
        TrainableRegistry registry,
        ISearchAlgorithm? search = null,
        ITrialScheduler? scheduler = null,
        IStopper? stopper = null,
        IEnumerable<ITrialCallback>? callbacks = null,
        IExperimentStore? store = null,
        ControllerOptions? options = null,
        ILogger? logger = null)
    {
        _executor = executor;
        _registry = registry;
        _search = search ?? new TrialListSearch();
        _scheduler = scheduler ?? new FifoScheduler();
        _stopper = stopper ?? NoopStopper.Instance;
        _callbacks = callbacks?.ToList() ?? new List<ITrialCallback>();
        _options = options ?? new ControllerOptions();
        ExperimentDirectory = _options.ExperimentDirectory
            ?? Path.Combine(Path.GetTempPath(), "torchtrials", $"{_options.ExperimentName}_{DateTime.Now:yyyyMMdd-HHmmss}_{Guid.NewGuid().ToString("N")[..6]}");
        Directory.CreateDirectory(ExperimentDirectory);
        _store = store ?? new NullExperimentStore(ExperimentDirectory);
        _logger = logger ?? NullLogger.Instance;
        if (!_scheduler.SetSearchProperties(_options.Metric, _options.Mode))
            throw new ArgumentException($"the scheduler was configured with another metric or mode than the experiment's ({_options.Metric}, {_options.Mode})");
    }

    public ITrialExecutor Executor => _executor;

    public ITrialScheduler Scheduler => _scheduler;

    public ISearchAlgorithm Search => _search;

    public IExperimentStore Store => _store;

    public string ExperimentDirectory { get; }

    public IReadOnlyList<Trial> Trials => _trials;

    public IEnumerable<Trial> PendingTrials => _pending;

    public IEnumerable<Trial> PausedTrials => _paused;

    public DeviceSlotAllocator Allocator => _executor.Allocator;

    public double ElapsedSeconds => _clock.Elapsed.TotalSeconds;

    /// <summary>True when the last step found nothing to do (the search algorithm is waiting).</summary>
    public bool LastStepIdle { get; private set; }

    /// <summary>Steps taken so far.</summary>
    public int Iteration => _iteration;

    /// <summary>True when every trial is terminated or errored and the search will produce no more.</summary>
    public bool IsFinished => _unfinished == 0 && _search.IsFinished && _lostTrials.Count == 0;

    public Trial? GetTrial(string id) => _byId.GetValueOrDefault(id);

    /// <summary>
    /// Adds a trial: checks its trainable exists, applies the trainable's own resource request (an error when the trial
    /// also sets resources, as in Ray), and rejects requests this machine can never satisfy.
    /// </summary>
    public void AddTrial(Trial trial)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_byId.ContainsKey(trial.Id)) throw new ArgumentException($"a trial with id '{trial.Id}' was already added");
        var entry = _registry.TryGet(trial.TrainableName, out var e) ? e : null;
        if (entry?.DefaultResources?.Invoke(trial.Config) is { } defaults)
        {
            if (trial.ExplicitResources && trial.Resources != defaults)
                throw new ArgumentException(
                    $"Resources for trainable '{trial.TrainableName}' have been automatically set to {defaults} by its DefaultResourceRequest; clear the resources_per_trial option (it asked for {trial.Resources}).");
            trial.SetResourcesFromController(defaults);
        }
        if (entry is null)
            throw new ArgumentException($"unknown trainable '{trial.TrainableName}' (registered: {string.Join(", ", _registry.Entries.Select(x => x.Name).Order(StringComparer.Ordinal))})");
        var why = _executor.Allocator.WhyNeverFits(trial.Resources);
        if (why is not null) throw new ResourceRequestException($"trial {trial.Id} {why}");
        Register(trial);
        _store.TrialAdded(trial);
        _scheduler.OnTrialAdd(this, trial);
    }

    /// <summary>Takes one step: start a trial, or process one event. Throws when called after the experiment finished.</summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsFinished) throw new TrialControllerException("Called Step() when all trials finished.");
        _iteration++;
        foreach (var cb in _callbacks) cb.OnStepBegin(_iteration, _trials);

        foreach (var lost in _executor.TakeLostTrials())
            _lostTrials.Enqueue((lost, new InvalidOperationException($"the device of trial {lost.Id} was lost")));

        LastStepIdle = false;
        if (_lostTrials.Count > 0)
        {
            var (trial, error) = _lostTrials.Dequeue();
            if (trial.Status == TrialStatus.Running) ProcessTrialFailure(trial, error, deviceLost: true);
        }
        else if (GetNextTrial() is { } next)
        {
            StartTrial(next);
        }
        else if (_executor.HasWork)
        {
            if (_executor.NextEvent(_options.EventWait) is { } ev) ProcessEvent(ev);
        }
        else if (_pending.Count + _paused.Count > 0 && _running == 0 && _search.IsFinished)
        {
            var stuck = _pending.FirstOrDefault() ?? _paused.First();
            throw new TrialControllerException(
                $"No trial can run: trial {stuck.Id} needs {stuck.Resources}, which is not available and nothing running will free ({_executor.Allocator.DescribeUsage()}).");
        }
        else
        {
            LastStepIdle = true;
        }

        StopExperimentIfNeeded();
        _executor.Dispatch();
        MaybeFlush();
        foreach (var cb in _callbacks) cb.OnStepEnd(_iteration, _trials);
    }

    /// <summary>Steps until the experiment finishes or <paramref name="cancel"/> fires; then stops what is running and saves state.</summary>
    public void Run(CancellationToken cancel = default)
    {
        try
        {
            while (!IsFinished && !cancel.IsCancellationRequested)
            {
                Step();
                if (LastStepIdle) Thread.Sleep(1);
            }
        }
        finally
        {
            if (cancel.IsCancellationRequested) Interrupt();
            Checkpoint(force: true);
            if (IsFinished)
                foreach (var cb in _callbacks) cb.OnExperimentEnd(_trials);
        }
    }

    /// <summary>
    /// Stops every running trial without ending it (Ctrl-C): each is left PENDING in the store, so a later
    /// <see cref="Resume"/> continues it from its latest persistent checkpoint.
    /// </summary>
    public void Interrupt()
    {
        foreach (var trial in _trials.Where(t => t.Status is TrialStatus.Running).ToList())
        {
            _executor.Stop(trial, error: true);
            _cachedDecisions.Remove(trial);
            trial.IsSaving = false;
            trial.IsRestoring = false;
            SetStatus(trial, TrialStatus.Pending, "interrupted");
        }
        _store.Flush();
    }

    /// <summary>Writes the experiment state and commits the store (Ray's runner.checkpoint(force=True)).</summary>
    public void Checkpoint(bool force = false)
    {
        _store.SaveExperimentState(new JsonObject
        {
            ["name"] = _options.ExperimentName,
            ["metric"] = _options.Metric,
            ["mode"] = _options.Mode?.ToString().ToLowerInvariant(),
            ["search_state"] = _search.SaveState(),
            ["search_finished"] = _search.IsFinished,
            ["trial_sequence"] = _sequence,
            ["updated"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        });
        if (force) _store.Flush();
        else _store.BeginFlush();
        _lastFlushTicks = _clock.ElapsedTicks;
    }

    /// <summary>
    /// Rebuilds a controller from the store of a killed or finished run. Unfinished trials become pending and continue
    /// from their latest persistent checkpoint; errored trials stay errored unless <paramref name="resume"/> asks to
    /// resume or restart them. The search algorithm continues where it stopped.
    /// </summary>
    public static TrialController Resume(
        IExperimentStore store,
        ITrialExecutor executor,
        TrainableRegistry registry,
        ResumeOptions? resume = null,
        ISearchAlgorithm? search = null,
        ITrialScheduler? scheduler = null,
        IStopper? stopper = null,
        IEnumerable<ITrialCallback>? callbacks = null,
        ControllerOptions? options = null,
        ILogger? logger = null)
    {
        resume ??= new ResumeOptions();
        var stored = store.Load() ?? throw new ArgumentException($"there is no experiment to resume in '{store.Directory}'");
        var controller = new TrialController(executor, registry, search, scheduler, stopper, callbacks, store,
            (options ?? new ControllerOptions()) with { ExperimentDirectory = store.Directory }, logger);
        if (stored.State["search_state"] is { } searchState) controller._search.RestoreState(searchState);
        if (stored.State["search_finished"]?.GetValue<bool>() == true) controller._search.SetFinished();

        void Warn(string line)
        {
            controller._logger.LogWarning("{Warning}", line);
            resume.OnWarning?.Invoke(line);
        }
        var indexed = stored.Trials.SelectMany(t => t.Checkpoints).Select(c => Path.GetFullPath(c.Path)).ToHashSet(StringComparer.Ordinal);
        foreach (var record in stored.Trials)
        {
            var trial = TrialStateCodec.Decode(record, Warn);
            RemoveUnindexedCheckpoints(trial.LogDirectory ?? Path.Combine(controller.ExperimentDirectory, trial.DirectoryName), trial, indexed);
            var previous = trial.Status;
            switch (trial.Status)
            {
                case TrialStatus.Running or TrialStatus.Paused or TrialStatus.Pending:
                    trial.Status = resume.ResumeUnfinished ? TrialStatus.Pending : TrialStatus.Terminated;
                    break;
                case TrialStatus.Error when resume.RestartErrored:
                    trial.Checkpoints.Clear();
                    trial.NumFailures = 0;
                    trial.LastResult = null;
                    trial.ErrorMessage = null;
                    trial.Status = TrialStatus.Pending;
                    store.ResultsRolledBack(trial, 0);
                    break;
                case TrialStatus.Error when resume.ResumeErrored:
                    trial.NumFailures = 0;
                    trial.ErrorMessage = null;
                    trial.Status = TrialStatus.Pending;
                    break;
            }
            if (trial.Status == TrialStatus.Pending)
                store.ResultsRolledBack(trial, trial.Checkpoint?.TrainingIteration ?? 0);
            if (trial.Status == TrialStatus.Pending && trial.Checkpoint is null) trial.LastResult = null;
            controller.Register(trial, keepSequence: true);
            store.TrialChanged(trial, previous, "resume");
            controller._scheduler.OnTrialAdd(controller, trial);
        }
        controller._sequence = Math.Max(controller._sequence, stored.State["trial_sequence"]?.GetValue<long>() ?? 0);
        store.Flush();
        // The store is the source of truth: callbacks (the per-trial files) catch up with each trial's stored history.
        foreach (var trial in controller._trials)
        {
            if (trial.LogDirectory is null) continue;
            var history = store.ResultsOf(trial.Id);
            foreach (var cb in controller._callbacks) cb.OnTrialResumed(trial, history);
        }
        return controller;
    }

    /// <summary>
    /// Removes what a killed run left in a trial's folder that no store record names: half-written checkpoint folders
    /// (<c>*.tmp-*</c>) and complete ones whose index entry was never committed or was already retired.
    /// </summary>
    private static void RemoveUnindexedCheckpoints(string folder, Trial trial, HashSet<string> indexed)
    {
        if (!Directory.Exists(folder)) return;
        foreach (var dir in Directory.EnumerateDirectories(folder, "checkpoint_*"))
        {
            var full = Path.GetFullPath(dir);
            if (indexed.Contains(full) || trial.Checkpoints.ExternalDirectories.Contains(full)) continue;
            try
            {
                Directory.Delete(full, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    public void StopTrial(Trial trial)
    {
        switch (trial.Status)
        {
            case TrialStatus.Pending or TrialStatus.Paused:
                trial.Checkpoints.ReleaseMemory();
                SetStatus(trial, TrialStatus.Terminated, "stopped while waiting");
                _scheduler.OnTrialRemove(this, trial);
                _search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Pruned);
                foreach (var cb in _callbacks) cb.OnTrialComplete(_iteration, _trials, trial);
                break;
            case TrialStatus.Running:
                _cachedDecisions.Remove(trial);
                _executor.Stop(trial, error: false);
                trial.IsSaving = false;
                trial.IsRestoring = false;
                trial.Checkpoints.ReleaseMemory();
                SetStatus(trial, TrialStatus.Terminated, "stopped");
                _scheduler.OnTrialComplete(this, trial, trial.LastResult);
                _search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Pruned);
                foreach (var cb in _callbacks) cb.OnTrialComplete(_iteration, _trials, trial);
                break;
        }
    }

    public void PauseTrial(Trial trial)
    {
        if (trial.Status != TrialStatus.Running)
            throw new InvalidOperationException($"trial {trial.Id} cannot be paused: it is {trial.Status}");
        _cachedDecisions.Remove(trial);
        var checkpoint = _executor.SaveToMemory(trial);
        trial.Checkpoints.OnCheckpoint(checkpoint);
        _executor.Stop(trial, error: false);
        // Stopping drops a save or restore in flight (its event is stale now): as with StopTrial and Interrupt, nothing may wait for it.
        trial.IsSaving = false;
        trial.IsRestoring = false;
        SetStatus(trial, TrialStatus.Paused, "paused");
    }

    public void UnpauseTrial(Trial trial)
    {
        if (trial.Status != TrialStatus.Paused)
            throw new InvalidOperationException($"trial {trial.Id} cannot be unpaused: it is {trial.Status}");
        SetStatus(trial, TrialStatus.Pending, "unpaused");
    }

    /// <summary>A save made while the trial's result is being routed (PBT's donor save) is stamped with that result.</summary>
    public MemoryCheckpoint SaveToMemory(Trial trial)
    {
        var checkpoint = _executor.SaveToMemory(trial, _routing.Trial == trial ? _routing.Result : null);
        trial.Checkpoints.OnCheckpoint(checkpoint);
        return checkpoint;
    }

    public void ExploitTrial(Trial recipient, Checkpoint donorCheckpoint, TrialConfig newConfig, string newTag)
    {
        if (recipient.Status != TrialStatus.Running)
        {
            // A waiting trial takes the donor's state when it next starts.
            recipient.SetConfigFromController(newConfig);
            recipient.ExperimentTag = newTag;
            recipient.Checkpoints.Clear();
            if (donorCheckpoint is MemoryCheckpoint memory)
            {
                var copy = memory.LoadState(memory.HomeDevice ?? TorchSharp.torch.CPU);
                recipient.Checkpoints.OnCheckpoint(_executor.CheckpointStore.Add(MemoryCheckpoint.FromState(copy, donorCheckpoint.Result)));
            }
            else
            {
                recipient.Checkpoints.OnCheckpoint(donorCheckpoint);
            }
            _store.TrialChanged(recipient, reason: "exploited");
            return;
        }
        _executor.Exploit(recipient, donorCheckpoint, newConfig);
        recipient.SetConfigFromController(newConfig);
        recipient.ExperimentTag = newTag;
        // The exploited state is now the trial's newest: its own older checkpoints must never win over it.
        recipient.Checkpoints.Clear();
        var exploited = donorCheckpoint.Result is { } donorResult
            ? donorResult with { TrialId = recipient.Id, ExperimentTag = newTag }
            : null;
        recipient.Checkpoints.OnCheckpoint(_executor.SaveToMemory(recipient, exploited));
        long rollbackTo = exploited?.TrainingIteration ?? 0;
        if (_routing.Trial == recipient)
        {
            // The result being routed is stored first; the history then restarts from the donor's iteration.
            _rollbackAfterResult[recipient] = rollbackTo;
            _exploitedResult = exploited;
        }
        else
        {
            if (exploited is not null) recipient.LastResult = exploited;
            _store.ResultsRolledBack(recipient, rollbackTo);
        }
        _store.TrialChanged(recipient, reason: "exploited");
    }

    public void ChangeTrialResources(Trial trial, Resources resources)
    {
        var why = _executor.Allocator.WhyNeverFits(resources);
        if (why is not null) throw new ResourceRequestException($"trial {trial.Id} {why}");
        if (trial.Status == TrialStatus.Running)
        {
            PauseTrial(trial);
            trial.UpdateResources(resources);
            SetStatus(trial, TrialStatus.Pending, "resources changed");
            if (HasResourcesFor(trial)) StartTrial(trial);
        }
        else
        {
            trial.UpdateResources(resources);
            _store.TrialChanged(trial, reason: "resources changed");
        }
    }

    public bool HasResourcesFor(Trial trial) => _executor.HasResourcesFor(trial);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _store.Flush();
        }
        finally
        {
            _executor.Dispose();
            foreach (var trial in _trials) trial.Checkpoints.ReleaseMemory();
            _store.Dispose();
        }
    }

    /// <summary>Trials currently running.</summary>
    public int RunningCount => _running;

    private void Register(Trial trial, bool keepSequence = false)
    {
        if (!keepSequence || trial.Sequence == 0) trial.Sequence = ++_sequence;
        else _sequence = Math.Max(_sequence, trial.Sequence);
        trial.Checkpoints.RetirePersistent = checkpoint => _store.CheckpointRetired(trial, checkpoint);
        _trials.Add(trial);
        _byId[trial.Id] = trial;
        if (trial.Status is not (TrialStatus.Terminated or TrialStatus.Error)) _unfinished++;
        if (trial.Status == TrialStatus.Running) _running++;
        if (trial.Status == TrialStatus.Pending) _pending.Add(trial);
        if (trial.Status == TrialStatus.Paused) _paused.Add(trial);
    }

    private Trial? GetNextTrial()
    {
        while (_pending.Count < _options.MaxPendingTrials && !_search.IsFinished)
        {
            var trial = _search.NextTrial();
            if (trial is null) break;
            AddTrial(trial);
        }
        if (_options.MaxConcurrentTrials is { } max && _running >= max) return null;
        return _scheduler.ChooseTrialToRun(this);
    }

    private void StartTrial(Trial trial)
    {
        // The folder is created by whoever first writes into it (loggers, checkpoints, error.txt).
        trial.LogDirectory ??= Path.Combine(ExperimentDirectory, trial.DirectoryName);
        var checkpoint = trial.Checkpoint;
        bool started;
        try
        {
            started = _executor.Start(trial, checkpoint, ContextFor);
        }
        catch (TrialStartException e)
        {
            _logger.LogError(e, "Trial {TrialId} could not start", trial.Id);
            trial.NumFailures++;
            RecordError(trial, e);
            SetStatus(trial, TrialStatus.Error, "start failed");
            _scheduler.OnTrialError(this, trial);
            _search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Errored);
            foreach (var cb in _callbacks) cb.OnTrialError(_iteration, _trials, trial);
            FailFastIfNeeded(trial, e);
            return;
        }
        if (!started) return;
        trial.StartTime ??= DateTimeOffset.UtcNow;
        // One history per trial: whatever ran past the point it restarts from (its checkpoint, or nothing) is discarded.
        long restartAt = checkpoint?.TrainingIteration ?? 0;
        if (trial.LastResult is { } last && restartAt < last.TrainingIteration)
        {
            _store.ResultsRolledBack(trial, restartAt);
            if (checkpoint is null) trial.LastResult = null;
        }
        SetStatus(trial, TrialStatus.Running, checkpoint is null ? "started" : "restored");
        if (!trial.IsRestoring) _executor.ContinueTraining(trial, StepsFor(trial));
        foreach (var cb in _callbacks) cb.OnTrialStart(_iteration, _trials, trial);
    }

    /// <summary>
    /// Iterations a trial may run ahead of the controller: one, unless the scheduler allows buffering; then up to the
    /// buffer length, never past the trial's iteration limit or its next periodic checkpoint.
    /// </summary>
    private int StepsFor(Trial trial)
    {
        long steps;
        if (CanRunAhead(trial)) steps = int.MaxValue;
        else if (_options.ResultBufferLength > 1 && _scheduler.SupportsResultBuffering) steps = _options.ResultBufferLength;
        else return 1;
        long done = trial.LastResult?.TrainingIteration ?? 0;
        if (trial.Stop.TryGetValue(TrialResult.TrainingIterationKey, out var limit)) steps = Math.Min(steps, (long)Math.Ceiling(limit) - done);
        if (trial.Checkpointing.Frequency > 0) steps = Math.Min(steps, trial.Checkpointing.Frequency - done % trial.Checkpointing.Frequency);
        return (int)Math.Clamp(steps, 1, int.MaxValue);
    }

    /// <summary>Every decision until the trial's iteration cap is Continue, whatever the results say (see <see cref="ControllerOptions.RunAhead"/>).</summary>
    private bool CanRunAhead(Trial trial)
    {
        if (!_options.RunAhead || !_scheduler.AlwaysContinues || _stopper is not NoopStopper) return false;
        foreach (var key in trial.Stop.Keys)
            if (key != TrialResult.TrainingIterationKey) return false;
        return true;
    }

    private TrainableContext ContextFor(Trial trial, DeviceSlot slot) => new()
    {
        TrialId = trial.Id,
        ExperimentTag = trial.ExperimentTag,
        LogDirectory = trial.LogDirectory,
        Slot = slot,
        Seed = unchecked(_options.Seed * 1_000_003 + trial.Sequence),
        Logger = _logger,
    };

    private void ProcessEvent(ExecutorEvent ev)
    {
        var trial = ev.Trial;
        if (trial.Status != TrialStatus.Running || ev.Incarnation != _executor.IncarnationOf(trial))
        {
            if (ev is FailureEvent stale)
            {
                _logger.LogWarning(stale.Error, "Trial {TrialId} failed after it stopped running ({Status})", trial.Id, trial.Status);
            }
            return;
        }
        switch (ev)
        {
            case ResultEvent r:
                foreach (var result in r.Results)
                {
                    var decision = ProcessResult(trial, result);
                    if (decision is null || decision != SchedulerDecision.Continue || trial.Status != TrialStatus.Running) return;
                }
                if (trial.Status == TrialStatus.Running && !trial.IsSaving) _executor.ContinueTraining(trial, StepsFor(trial));
                break;
            case SaveEvent s:
                ProcessSave(trial, s.Checkpoint);
                break;
            case RestoreEvent:
                trial.IsRestoring = false;
                foreach (var cb in _callbacks) cb.OnTrialRestore(_iteration, _trials, trial);
                _executor.ContinueTraining(trial, StepsFor(trial));
                break;
            case FailureEvent f:
                ProcessTrialFailure(trial, f.Error, f.DeviceLost);
                break;
        }
    }

    /// <summary>Returns the decision when it was executed, or null when it was cached behind a save (or the trial failed).</summary>
    private SchedulerDecision? ProcessResult(Trial trial, TrialResult result)
    {
        SchedulerDecision decision;
        if (result.IsDuplicate)
        {
            result = (trial.LastResult ?? result) with { Done = true };
            trial.LastResult = result;
            decision = SchedulerDecision.Stop;
            _scheduler.OnTrialComplete(this, trial, result);
            _search.OnTrialComplete(trial.Id, result, TrialOutcome.Completed);
        }
        else
        {
            result = result with { TrialId = trial.Id, ExperimentTag = trial.ExperimentTag };
            string? decidedBy = null;
            bool stop;
            try
            {
                if (_stopper.ShouldStopTrial(trial.Id, result))
                {
                    stop = true;
                    decidedBy = _stopper.GetType().Name;
                }
                else
                {
                    stop = trial.ShouldStop(result);
                }
            }
            catch (KeyNotFoundException e)
            {
                ProcessTrialFailure(trial, e, deviceLost: false);
                return null;
            }
            if (stop)
            {
                result = result with { Done = true };
                _scheduler.OnTrialComplete(this, trial, result);
                _search.OnTrialComplete(trial.Id, result, TrialOutcome.Completed);
                decision = SchedulerDecision.Stop;
            }
            else
            {
                try
                {
                    _routing = (trial, result);
                    decision = _scheduler.OnTrialResult(this, trial, result);
                }
                catch (KeyNotFoundException e)
                {
                    ProcessTrialFailure(trial, e, deviceLost: false);
                    return null;
                }
                finally
                {
                    _routing = default;
                }
                if (decision != SchedulerDecision.Continue) decidedBy = _scheduler.GetType().Name;
                if (decision == SchedulerDecision.Stop)
                {
                    result = result with { Done = true };
                    _search.OnTrialComplete(trial.Id, result, TrialOutcome.Pruned);
                }
                else
                {
                    _search.OnTrialResult(trial.Id, result);
                }
            }
            foreach (var cb in _callbacks) cb.OnTrialResult(_iteration, _trials, trial, result);
            if (trial.Status == TrialStatus.Running || trial.LastResult is null || result.TrainingIteration >= trial.LastResult.TrainingIteration)
                trial.RecordResult(result);
            _store.ResultReported(trial, result);
            if (_rollbackAfterResult.Remove(trial, out var rollbackTo))
            {
                _store.ResultsRolledBack(trial, rollbackTo);
                if (_exploitedResult is { } exploited) trial.LastResult = exploited;
                _exploitedResult = null;
            }
            // Decisions of schedulers and stoppers are kept; a trial reaching its own stopping criteria is not a decision.
            if (decidedBy is not null)
                _store.DecisionMade(trial, result.TrainingIteration, decision.ToString().ToUpperInvariant(), decidedBy);
        }

        if (trial.Status == TrialStatus.Running && (trial.ShouldCheckpoint() || result.ShouldCheckpoint))
            CheckpointTrial(trial);

        if (trial.IsSaving)
        {
            _cachedDecisions[trial] = decision;
            return null;
        }
        ExecuteDecision(trial, decision);
        return decision;
    }

    private void CheckpointTrial(Trial trial)
    {
        if (trial.Checkpointing.Storage == CheckpointStorage.Memory)
        {
            SaveToMemory(trial);
            return;
        }
        trial.IsSaving = true;
        var name = $"checkpoint_{trial.LastResult?.TrainingIteration ?? 0:D6}";
        var dir = Path.Combine(trial.LogDirectory!, name);
        // A folder is written once: after a rollback its name may still belong to a checkpoint whose deletion awaits a commit.
        for (int n = 1; Directory.Exists(dir); n++) dir = Path.Combine(trial.LogDirectory!, $"{name}_{n}");
        _executor.SaveToDisk(trial, dir);
    }

    private void ProcessSave(Trial trial, PersistentCheckpoint checkpoint)
    {
        trial.IsSaving = false;
        var warning = trial.Checkpoints.OnCheckpoint(checkpoint);
        if (warning is not null) _logger.LogWarning("Trial {TrialId}: {Warning}", trial.Id, warning);
        _store.CheckpointSaved(trial, checkpoint);
        _store.TrialChanged(trial);
        foreach (var cb in _callbacks) cb.OnCheckpoint(_iteration, _trials, trial, checkpoint);
        if (_cachedDecisions.Remove(trial, out var decision))
        {
            ExecuteDecision(trial, decision);
            if (decision == SchedulerDecision.Continue && trial.Status == TrialStatus.Running) _executor.ContinueTraining(trial, StepsFor(trial));
        }
    }

    private void ExecuteDecision(Trial trial, SchedulerDecision decision)
    {
        if (trial.Status != TrialStatus.Running) return;
        switch (decision)
        {
            case SchedulerDecision.Pause:
                PauseTrial(trial);
                break;
            case SchedulerDecision.Stop:
                _executor.Stop(trial, error: false);
                trial.Checkpoints.ReleaseMemory();
                SetStatus(trial, TrialStatus.Terminated, "completed");
                foreach (var cb in _callbacks) cb.OnTrialComplete(_iteration, _trials, trial);
                break;
        }
    }

    private void ProcessTrialFailure(Trial trial, Exception error, bool deviceLost)
    {
        if (_options.FailFast == FailFastMode.Raise)
            throw new TrialFailedException(trial, error);
        if (trial.Status != TrialStatus.Running) return;
        _logger.LogWarning(error, "Trial {TrialId} failed", trial.Id);
        _cachedDecisions.Remove(trial);
        bool recover = trial.ShouldRecover();
        trial.NumFailures++;
        RecordError(trial, error);
        _executor.Stop(trial, error: true);
        trial.IsSaving = false;
        if (deviceLost && trial.Checkpoints.NewestMemory is { } memory && memory.Location == MemoryLocation.Device)
            trial.Checkpoints.ReleaseMemory();

        if (recover)
        {
            if (trial.IsRestoring) trial.Checkpoints.Clear();
            trial.IsRestoring = false;
            _scheduler.OnTrialError(this, trial);
            SetStatus(trial, TrialStatus.Pending, deviceLost ? "device lost, requeued" : "failed, requeued");
            _scheduler.OnTrialAdd(this, trial);
            return;
        }

        trial.IsRestoring = false;
        _scheduler.OnTrialError(this, trial);
        _search.OnTrialComplete(trial.Id, trial.LastResult, TrialOutcome.Errored);
        foreach (var cb in _callbacks) cb.OnTrialError(_iteration, _trials, trial);
        trial.Checkpoints.ReleaseMemory();
        SetStatus(trial, TrialStatus.Error, "failed");
        FailFastIfNeeded(trial, error);
    }

    private void FailFastIfNeeded(Trial failed, Exception error)
    {
        if (_options.FailFast == FailFastMode.Raise) throw new TrialFailedException(failed, error);
        if (_options.FailFast != FailFastMode.StopAll) return;
        _search.SetFinished();
        foreach (var trial in _trials.Where(t => t.Status is TrialStatus.Pending or TrialStatus.Paused or TrialStatus.Running).ToList())
            StopTrial(trial);
    }

    private void RecordError(Trial trial, Exception error)
    {
        trial.ErrorMessage = error.Message;
        if (trial.LogDirectory is null) return;
        Directory.CreateDirectory(trial.LogDirectory);
        var path = Path.Combine(trial.LogDirectory, "error.txt");
        File.AppendAllText(path, $"Failure # {trial.NumFailures} (occurred at {DateTime.Now:yyyy-MM-dd_HH-mm-ss}){Environment.NewLine}{error}{Environment.NewLine}{Environment.NewLine}");
        trial.ErrorFile = path;
    }

    private void StopExperimentIfNeeded()
    {
        if (!_stopper.ShouldStopAll()) return;
        _search.SetFinished();
        foreach (var trial in _trials.Where(t => t.Status is TrialStatus.Pending or TrialStatus.Paused or TrialStatus.Running).ToList())
            StopTrial(trial);
    }

    private void MaybeFlush()
    {
        if (_store.PendingWrites == 0) return;
        if (_clock.ElapsedTicks - _lastFlushTicks < _options.StoreFlushInterval.TotalSeconds * Stopwatch.Frequency) return;
        Checkpoint();
    }

    private void SetStatus(Trial trial, TrialStatus status, string reason)
    {
        var previous = trial.Status;
        if (previous == status) return;
        switch (previous)
        {
            case TrialStatus.Pending: _pending.Remove(trial); break;
            case TrialStatus.Paused: _paused.Remove(trial); break;
        }
        if (previous == TrialStatus.Running) _running--;
        if (status == TrialStatus.Running) _running++;
        bool wasFinished = previous is TrialStatus.Terminated or TrialStatus.Error;
        bool isFinished = status is TrialStatus.Terminated or TrialStatus.Error;
        if (!wasFinished && isFinished) _unfinished--;
        if (wasFinished && !isFinished) _unfinished++;
        trial.Status = status;
        switch (status)
        {
            case TrialStatus.Pending: _pending.Add(trial); break;
            case TrialStatus.Paused: _paused.Add(trial); break;
        }
        _store.TrialChanged(trial, previous, reason);
        foreach (var cb in _callbacks) cb.OnTrialStatusChanged(trial, previous, reason);
    }

    /// <summary>An insertion-ordered set of trials with O(1) add and remove.</summary>
    private sealed class OrderedTrialSet : IEnumerable<Trial>
    {
        private readonly LinkedList<Trial> _list = new();
        private readonly Dictionary<Trial, LinkedListNode<Trial>> _nodes = new();

        public int Count => _list.Count;

        public void Add(Trial trial)
        {
            if (_nodes.ContainsKey(trial)) return;
            _nodes[trial] = _list.AddLast(trial);
        }

        public void Remove(Trial trial)
        {
            if (_nodes.Remove(trial, out var node)) _list.Remove(node);
        }

        public IEnumerator<Trial> GetEnumerator() => _list.ToList().GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
