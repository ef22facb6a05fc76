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

/// <summary>
/// The event loop (Ray's TrialRunner, tune_controller.py). Each <see cref="Step"/> either starts one trial or processes one
/// event from the executor: a result (routed by the <see cref="DecisionStep"/> into CONTINUE / PAUSE / STOP), a finished
/// save or restore, or a failure (<see cref="FailureRecovery"/>). Decisions are cached while a persistent save is in
/// flight, exactly as Ray does. Statuses live in the <see cref="TrialStatusBook"/>; the store receives every change and is
/// committed periodically (<see cref="ExperimentStateWriter"/>), so a killed run resumes with <see cref="Resume"/>.
/// </summary>
public sealed class TrialController : ITrialControl, IDisposable
{
    private readonly ITrialExecutor _executor;
    private readonly ISearchAlgorithm _search;
    private readonly ITrialScheduler _scheduler;
    private readonly IStopper _stopper;
    private readonly IExperimentStore _store;
    private readonly ControllerOptions _options;
    private readonly ILogger _logger;
    private readonly TrainableRegistry _registry;
    private readonly TimeProvider _clock;
    private readonly long _started;
    private readonly CallbackList _callbacks;
    private readonly TrialStatusBook _book;
    private readonly ResultRouting _routing = new();
    private readonly DecisionStep _decisions;
    private readonly ExploitHandler _exploits;
    private readonly RunAheadPolicy _runAhead;
    private readonly FailureRecovery _recovery;
    private readonly ExperimentStateWriter _state;
    private readonly TrialCheckpointing _checkpointing;
    private readonly TrialLifecycle _lifecycle;
    private readonly Queue<(Trial Trial, Exception Error)> _lostTrials = new();
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
        _options = options ?? new ControllerOptions();
        _clock = _options.TimeProvider;
        _started = _clock.GetTimestamp();
        ExperimentDirectory = _options.ExperimentDirectory
            ?? Path.Combine(Path.GetTempPath(), "torchtrials", $"{_options.ExperimentName}_{_clock.GetLocalNow():yyyyMMdd-HHmmss}_{Guid.NewGuid().ToString("N")[..6]}");
        Directory.CreateDirectory(ExperimentDirectory);
        _store = store ?? new NullExperimentStore(ExperimentDirectory);
        _logger = logger ?? NullLogger.Instance;
        if (!_scheduler.SetSearchProperties(_options.Metric, _options.Mode))
            throw new ArgumentException($"the scheduler was configured with another metric or mode than the experiment's ({_options.Metric}, {_options.Mode})");
        var trials = new List<Trial>();
        _callbacks = new CallbackList(callbacks ?? [], trials, () => _iteration);
        _book = new TrialStatusBook(trials, _store, _callbacks);
        _decisions = new DecisionStep(this, _stopper, _scheduler, _search, _routing);
        _exploits = new ExploitHandler(_executor, _store, _routing, id => trials.Find(t => t.Id == id));
        _runAhead = new RunAheadPolicy(_options, _scheduler, _stopper);
        _checkpointing = new TrialCheckpointing(_executor, _store, _callbacks, _routing, _logger);
        _lifecycle = new TrialLifecycle(this, _executor, _scheduler, _search, _store, _book, _checkpointing, _callbacks);
        _recovery = new FailureRecovery(_options.FailFast, this, _executor, _scheduler, _search, _book, _callbacks,
            new ErrorLog(_clock), _checkpointing, _lifecycle, _logger);
        _executor.Attach(this);
        _state = new ExperimentStateWriter(_store, _clock, _options.StoreFlushInterval, () => new ExperimentState(
            _options.ExperimentName, _options.Metric, _options.Mode, _search.SaveState(), _search.IsFinished, _book.Sequence, _clock.GetUtcNow()));
    }

    public ITrialExecutor Executor => _executor;

    public ITrialScheduler Scheduler => _scheduler;

    public ISearchAlgorithm Search => _search;

    public IExperimentStore Store => _store;

    public string ExperimentDirectory { get; }

    public IReadOnlyList<Trial> Trials => _book.Trials;

    public IEnumerable<Trial> PendingTrials => _book.Pending;

    public bool SearchSamplesIndependently => _search.SamplesIndependently;

    public IEnumerable<Trial> PausedTrials => _book.Paused;

    public DeviceSlotAllocator Allocator => _executor.Allocator;

    public double ElapsedSeconds => _clock.GetElapsedTime(_started).TotalSeconds;

    /// <summary>True when the last step found nothing to do (the search algorithm is waiting).</summary>
    public bool LastStepIdle { get; private set; }

    /// <summary>Steps taken so far.</summary>
    public int Iteration => _iteration;

    /// <summary>Trials currently running.</summary>
    public int RunningCount => _book.RunningCount;

    /// <summary>True when every trial is terminated or errored and the search will produce no more.</summary>
    public bool IsFinished => _book.UnfinishedCount == 0 && _search.IsFinished && _lostTrials.Count == 0;

    public Trial? GetTrial(string id) => _book.Get(id);

    /// <summary>Adds a trial once it passes the <see cref="TrialAdmission"/> checks.</summary>
    public void AddTrial(Trial trial)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_book.Contains(trial.Id)) throw new ArgumentException($"a trial with id '{trial.Id}' was already added");
        TrialAdmission.Admit(trial, _registry, _executor.Allocator);
        _book.Register(trial);
        _store.TrialAdded(trial);
        _scheduler.OnTrialAdd(this, trial);
    }

    /// <summary>Takes one step: start a trial, or process one event. Throws when called after the experiment finished.</summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsFinished) throw new TrialControllerException("Called Step() when all trials finished.");
        _iteration++;
        _callbacks.OnStepBegin();

        foreach (var lost in _executor.TakeLostTrials())
            _lostTrials.Enqueue((lost, new InvalidOperationException($"the device of trial {lost.Id} was lost")));

        LastStepIdle = false;
        if (_lostTrials.Count > 0)
        {
            var (trial, error) = _lostTrials.Dequeue();
            if (trial.Status == TrialStatus.Running) _recovery.OnFailure(trial, error, deviceLost: true);
        }
        else if (GetNextTrial() is { } next)
        {
            StartTrial(next);
        }
        else if (_executor.HasWork)
        {
            if (_executor.NextEvent(_options.EventWait) is { } ev) ProcessEvent(ev);
        }
        else if (_book.PendingCount + _book.PausedCount > 0 && _book.RunningCount == 0 && _search.IsFinished)
        {
            var stuck = _book.Pending.FirstOrDefault() ?? _book.Paused.First();
            throw new TrialControllerException(
                $"No trial can run: trial {stuck.Id} needs {stuck.Resources}, which is not available and nothing running will free ({_executor.Allocator.DescribeUsage()}).");
        }
        else
        {
            LastStepIdle = true;
        }

        if (_stopper.ShouldStopAll()) _lifecycle.StopUnfinished(_stopper.GetType().Name);
        _executor.Dispatch();
        _state.WriteIfDue();
        _callbacks.OnStepEnd();
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
            if (IsFinished) _callbacks.OnExperimentEnd();
        }
    }

    /// <summary>
    /// Stops every running trial without ending it (Ctrl-C): each is left PENDING in the store, so a later
    /// <see cref="Resume"/> continues it from its latest persistent checkpoint.
    /// </summary>
    public void Interrupt()
    {
        _lifecycle.Interrupt();
        _store.Flush();
    }

    /// <summary>Writes the experiment state and commits the store (Ray's runner.checkpoint(force=True)).</summary>
    public void Checkpoint(bool force = false) => _state.Write(force);

    /// <summary>Rebuilds a controller from the store of a killed or finished run; see <see cref="ExperimentResumer"/>.</summary>
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
        var stored = store.Load() ?? throw new ArgumentException($"there is no experiment to resume in '{store.Directory}'");
        var controller = new TrialController(executor, registry, search, scheduler, stopper, callbacks, store,
            (options ?? new ControllerOptions()) with { ExperimentDirectory = store.Directory }, logger);
        new ExperimentResumer(store, resume ?? new ResumeOptions(), controller._logger).Resume(stored, controller.ExperimentDirectory,
            controller._search, controller._book, controller._callbacks, trial => controller._scheduler.OnTrialAdd(controller, trial));
        return controller;
    }

    /// <summary>Stops a trial on the scheduler's request (this is its <see cref="ITrialControl"/> handle): recorded as stopped by it.</summary>
    public void StopTrial(Trial trial) => _lifecycle.Stop(trial, _scheduler.GetType().Name);

    public void PauseTrial(Trial trial) => _lifecycle.Pause(trial);

    public void UnpauseTrial(Trial trial) => _lifecycle.Unpause(trial);

    /// <summary>A save made while the trial's result is being routed (PBT's donor save) is stamped with that result.</summary>
    public MemoryCheckpoint SaveToMemory(Trial trial) => _checkpointing.SaveToMemory(trial);

    public void ExploitTrial(Trial recipient, Checkpoint donorCheckpoint, TrialConfig newConfig, string newTag) =>
        _exploits.Exploit(recipient, donorCheckpoint, newConfig, newTag);

    /// <summary>A running trial is paused, given its new resources and restarted at once when a slot for them is free.</summary>
    public void ChangeTrialResources(Trial trial, Resources resources)
    {
        if (_lifecycle.ChangeResources(trial, resources) && HasResourcesFor(trial)) StartTrial(trial);
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
            foreach (var trial in _book.Trials) trial.Checkpoints.ReleaseMemory();
            _store.Dispose();
        }
    }

    private Trial? GetNextTrial()
    {
        int maxPending = Math.Max(_options.MaxPendingTrials, _executor.PendingTrialsWanted);
        while (_book.PendingCount < maxPending && !_search.IsFinished)
        {
            var trial = _search.NextTrial();
            if (trial is null) break;
            AddTrial(trial);
        }
        if (_options.MaxConcurrentTrials is { } max && _book.RunningCount >= max) return null;
        return _scheduler.ChooseTrialToRun(this);
    }

    private void StartTrial(Trial trial)
    {
        // The folder is created by whoever first writes into it (loggers, checkpoints, error.txt).
        trial.LogDirectory ??= Path.Combine(ExperimentDirectory, trial.DirectoryName);
        var checkpoint = trial.Checkpoint;
        try
        {
            if (!_executor.Start(trial, checkpoint, ContextFor)) return;
        }
        catch (TrialStartException e)
        {
            _recovery.OnStartFailure(trial, e);
            return;
        }
        trial.StartTime ??= _clock.GetUtcNow();
        // One history per trial: whatever ran past the point it restarts from (its checkpoint, or nothing) is discarded.
        long restartAt = checkpoint?.TrainingIteration ?? 0;
        if (trial.LastResult is { } last && restartAt < last.TrainingIteration)
        {
            _store.ResultsRolledBack(trial, restartAt);
            if (checkpoint is null) trial.LastResult = null;
        }
        _book.SetStatus(trial, TrialStatus.Running, checkpoint is null ? "started" : "restored");
        if (!trial.IsRestoring) ContinueTraining(trial);
        _callbacks.OnTrialStart(trial);
    }

    private void ContinueTraining(Trial trial) => _executor.ContinueTraining(trial, _runAhead.StepsFor(trial));

    private TrainableContext ContextFor(Trial trial, DeviceSlot slot) => new()
    {
        TrialId = trial.Id,
        ExperimentTag = trial.ExperimentTag,
        LogDirectory = trial.LogDirectory,
        Slot = slot,
        Seed = unchecked(_options.Seed * 1_000_003 + trial.Sequence),
        Logger = _logger,
        TimeProvider = _clock,
    };

    private void ProcessEvent(ExecutorEvent ev)
    {
        var trial = ev.Trial;
        if (trial.Status != TrialStatus.Running || ev.Incarnation != _executor.IncarnationOf(trial))
        {
            if (ev is FailureEvent stale)
                _logger.LogWarning(stale.Error, "Trial {TrialId} failed after it stopped running ({Status})", trial.Id, trial.Status);
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
                if (trial.Status == TrialStatus.Running && !trial.IsSaving) ContinueTraining(trial);
                break;
            case SaveEvent s:
                ProcessSave(trial, s.Checkpoint);
                break;
            case RestoreEvent:
                trial.IsRestoring = false;
                _callbacks.OnTrialRestore(trial);
                ContinueTraining(trial);
                break;
            case FailureEvent f:
                _recovery.OnFailure(trial, f.Error, f.DeviceLost);
                break;
        }
    }

    /// <summary>Decides on one result, records it, checkpoints when due, then executes the decision unless a save holds it back.</summary>
    /// <returns>The decision when it was executed; null when it waits for a save (or the trial failed).</returns>
    private SchedulerDecision? ProcessResult(Trial trial, TrialResult result)
    {
        var decision = _decisions.Decide(trial, result, out var missingKey);
        if (decision is null)
        {
            _recovery.OnFailure(trial, missingKey!, deviceLost: false);
            return null;
        }
        if (!result.IsDuplicate) RecordResult(trial, decision);
        if (_checkpointing.IsDue(trial, decision.Result)) _checkpointing.Save(trial);
        if (trial.IsSaving)
        {
            _checkpointing.Hold(trial, decision);
            return null;
        }
        ExecuteDecision(trial, decision);
        return decision.Decision;
    }

    /// <summary>Tells the callbacks, keeps the newest result on the trial and stores it with the decision of a scheduler or stopper.</summary>
    private void RecordResult(Trial trial, TrialDecision decision)
    {
        var result = decision.Result;
        _callbacks.OnTrialResult(trial, result);
        if (trial.Status == TrialStatus.Running || trial.LastResult is null || result.TrainingIteration >= trial.LastResult.TrainingIteration)
            trial.RecordResult(result);
        _store.ResultReported(trial, result);
        _routing.ApplyAfterResult(trial, _store);
        // Decisions of schedulers and stoppers are kept; a trial reaching its own stopping criteria is not a decision.
        if (decision.DecidedBy is { } decidedBy)
            _store.DecisionMade(trial, result.TrainingIteration, decision.Decision.ToString().ToUpperInvariant(), decidedBy);
    }

    private void ProcessSave(Trial trial, PersistentCheckpoint checkpoint)
    {
        if (_checkpointing.OnSaved(trial, checkpoint) is not { } waited) return;
        ExecuteDecision(trial, waited);
        if (waited.Decision == SchedulerDecision.Continue && trial.Status == TrialStatus.Running) ContinueTraining(trial);
    }

    private void ExecuteDecision(Trial trial, TrialDecision decision)
    {
        if (trial.Status != TrialStatus.Running) return;
        switch (decision.Decision)
        {
            case SchedulerDecision.Pause:
                PauseTrial(trial);
                break;
            case SchedulerDecision.Stop:
                _lifecycle.Complete(trial, decision);
                break;
        }
    }
}
