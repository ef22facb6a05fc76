using System.ComponentModel;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Gpu;
using TorchTrials.Gpu.Cuda;
using TorchTrials.Gpu.Native;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;

namespace TorchTrials.Runner;

/// <summary>How trials are searched and scheduled (Ray's TuneConfig).</summary>
public sealed record TuneConfig
{
    /// <summary>The result key to optimise; schedulers and searchers without their own use it.</summary>
    public string? Metric { get; init; }

    public MetricMode? Mode { get; init; }

    /// <summary>Decides CONTINUE / PAUSE / STOP per result; FIFO when null.</summary>
    public ITrialScheduler? Scheduler { get; init; }

    /// <summary>
    /// How configurations are chosen: a searcher (<see cref="TpeSearcher"/>, <see cref="RandomSearcher"/>, either wrapped
    /// in a <see cref="ConcurrencyLimiter"/> or <see cref="Repeater"/>) run for <see cref="NumSamples"/> trials. When null,
    /// the basic variant generator (grid and random search over the space, Ray's default) runs, with <see cref="Variants"/>.
    /// </summary>
    public ISearcher? Searcher { get; init; }

    /// <summary>Options of the basic variant generator, the search when <see cref="Searcher"/> is null; not with a searcher.</summary>
    public BasicVariantOptions? Variants { get; init; }

    /// <summary>
    /// Advanced: a whole search algorithm of your own (Ray's SearchAlgorithm), which makes the trials itself; it replaces
    /// <see cref="Searcher"/> and <see cref="Variants"/>, and cannot be combined with them.
    /// </summary>
    [EditorBrowsable(EditorBrowsableState.Advanced)]
    public ISearchAlgorithm? SearchAlgorithm { get; init; }

    /// <summary>Samples of the search space (times the grid, for the basic variant generator).</summary>
    public int NumSamples { get; init; } = 1;

    /// <summary>At most this many trials at once; null lets the resources decide.</summary>
    public int? MaxConcurrentTrials { get; init; }

    /// <summary>Reuse finished trials' trainables through Reset (Ray's reuse_actors).</summary>
    public bool ReuseTrainables { get; init; }

    /// <summary>Seed of the search and of every trial's initialisation.</summary>
    public long Seed { get; init; }

    /// <summary>Iterations a trial may run ahead of the controller under FIFO (1 is lock-step); see <see cref="ControllerOptions.ResultBufferLength"/>.</summary>
    public int ResultBufferLength { get; init; } = 1;

    /// <summary>
    /// Let trials run ahead of the controller when nothing it could decide depends on their results (FIFO, no stoppers, stop
    /// on training_iteration only); see <see cref="ControllerOptions.RunAhead"/>. On by default; off gives strict lock-step.
    /// </summary>
    public bool RunAhead { get; init; } = true;

    /// <summary>
    /// Fused trial arrays (spec <c>executor: {fuse, max_members}</c>): with <see cref="FuseMode.Auto"/>, trials of a fusable
    /// trainable with the same fusion key train as lanes of one array on one slot (<see cref="FusedTrialExecutor"/>). Null is
    /// off. The inline executor never fuses.
    /// </summary>
    public FusionOptions? Fusion { get; init; }
}

/// <summary>Which executor runs the trials.</summary>
public enum ExecutorKind
{
    /// <summary>One thread per running trial (the normal run).</summary>
    Concurrent,

    /// <summary>Everything on the calling thread, one operation per step (deterministic; tests and debugging).</summary>
    Inline,
}

/// <summary>Where and how the experiment runs (Ray's RunConfig with its CheckpointConfig and FailureConfig).</summary>
public sealed record RunConfig
{
    /// <summary>The experiment's name; "TRAINABLE_DATE" when null. Its folder is StoragePath/Name.</summary>
    public string? Name { get; init; }

    /// <summary>Folder that holds experiments; "results" under the current directory when null.</summary>
    public string? StoragePath { get; init; }

    /// <summary>Stopping criteria: a trial stops when result[key] &gt;= value.</summary>
    public IReadOnlyDictionary<string, double>? Stop { get; init; }

    public IStopper? Stopper { get; init; }

    public CheckpointConfig Checkpoint { get; init; } = CheckpointConfig.None;

    public int MaxFailures { get; init; }

    public FailFastMode FailFast { get; init; } = FailFastMode.Off;

    /// <summary>Resources per trial; 1 CPU (or what the trainable declares) when null.</summary>
    public Resources? ResourcesPerTrial { get; init; }

    public IReadOnlyList<ITrialCallback> Callbacks { get; init; } = Array.Empty<ITrialCallback>();

    public TrialFileOptions Loggers { get; init; } = new();

    /// <summary>The machine to run on; detected when null. A simulated inventory accounts GPUs but trains on the CPU.</summary>
    public DeviceInventory? Inventory { get; init; }

    public ExecutorKind Executor { get; init; } = ExecutorKind.Concurrent;

    /// <summary>
    /// Builds the run's executor instead of <see cref="Executor"/> (a cluster of machines: TorchTrials.Cluster); null runs
    /// trials in this process.
    /// </summary>
    public ITrialExecutorFactory? ExecutorFactory { get; init; }

    /// <summary>LibTorch intra-op threads per trial; the slot's CPUs when null.</summary>
    public int? ThreadsPerTrial { get; init; }

    public long DeviceCheckpointBudgetBytes { get; init; } = 2L << 30;

    public long HostCheckpointBudgetBytes { get; init; } = 4L << 30;

    /// <summary>
    /// Receives every progress snapshot, on the controller's thread, which waits for it; <see cref="Tuner.FitWithProgress"/>
    /// streams them instead without ever holding the run back (the CLI's live table, a notebook display).
    /// </summary>
    public Action<ExperimentSnapshot>? OnSnapshot { get; init; }

    public TimeSpan SnapshotInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The clock of the run: default experiment names, snapshot throttling, and everything the controller times
    /// (<see cref="ControllerOptions.TimeProvider"/>). Tests pass a fake one.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// No progress lines. Without a logger factory the tuner otherwise writes one line per trial start and error (its
    /// message's first line and error.txt) and one at the end of the run (Ray's default reporter, verbose=1).
    /// </summary>
    public bool Quiet { get; init; }

    /// <summary>Where those progress lines go; the console when null.</summary>
    public TextWriter? ProgressOutput { get; init; }

    /// <summary>Keep the SQLite experiment store (needed to resume); off only for throwaway runs.</summary>
    public bool KeepStore { get; init; } = true;

    /// <summary>
    /// Files (name to text) written into a new experiment's folder once this process owns it and before any trial starts:
    /// the CLI keeps its spec there so <c>torchtrials resume</c> can rebuild the run. Names are made safe path components.
    /// </summary>
    public IReadOnlyDictionary<string, string> ExperimentFiles { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// The library front end, in the spirit of Ray's <c>Tuner(trainable, param_space, tune_config, run_config).fit()</c>:
/// builds the machine's slots, the executor, the search and the scheduler, runs the controller to the end and returns a
/// <see cref="ResultGrid"/>. <see cref="FitAsync"/> runs on a dedicated thread and honours cancellation (the run stops
/// promptly and can be resumed with <see cref="Restore"/>). The process owns the experiment for the whole fit
/// (<see cref="ExperimentLock"/>): a second fit or restore of the same folder, in this process or another, is refused with
/// <see cref="ExperimentInUseException"/> before it changes anything. Bad input found before the run (resources this machine
/// can never grant, a scheduler without its metric) leaves nothing on disk, nor does a new run that fails before its first trial.
/// </summary>
public sealed class Tuner
{
    private readonly string _trainable;
    private readonly SearchSpace _space;
    private readonly TuneConfig _tune;
    private readonly RunConfig _run;
    private readonly TrainableRegistry _registry;
    private readonly ILoggerFactory _loggers;
    private readonly bool _loggerFactoryGiven;
    private readonly string? _restorePath;
    private readonly ResumeOptions? _resume;

    public Tuner(string trainable, SearchSpace? paramSpace = null, TuneConfig? tuneConfig = null, RunConfig? runConfig = null,
        TrainableRegistry? registry = null, ILoggerFactory? loggerFactory = null)
        : this(trainable, paramSpace, tuneConfig, runConfig, registry, loggerFactory, null, null)
    {
    }

    /// <summary>A tuner for a training function (the function form), registered under <paramref name="name"/>.</summary>
    public Tuner(TrainFunction function, SearchSpace? paramSpace = null, TuneConfig? tuneConfig = null, RunConfig? runConfig = null,
        ILoggerFactory? loggerFactory = null, string name = "train_function")
        : this(name, paramSpace, tuneConfig, runConfig, TrainableRegistry.CreateDefault().RegisterFunction(name, function), loggerFactory, null, null)
    {
    }

    private Tuner(string trainable, SearchSpace? paramSpace, TuneConfig? tuneConfig, RunConfig? runConfig, TrainableRegistry? registry,
        ILoggerFactory? loggerFactory, string? restorePath, ResumeOptions? resume)
    {
        // A native runtime that cannot load fails here, in one line naming the cause and the fix, not later on a trial's thread.
        NativeRuntime.EnsureLoaded();
        _registry = registry ?? TrainableRegistry.CreateDefault();
        if (!_registry.Contains(trainable))
            throw new ArgumentException($"unknown trainable '{trainable}' (registered: {string.Join(", ", _registry.Entries.Select(e => e.Name).Order(StringComparer.Ordinal))}){DidYouMean.Suggest(trainable, _registry.Entries.Select(e => e.Name))}", nameof(trainable));
        _trainable = trainable;
        _space = paramSpace ?? new SearchSpace();
        _tune = tuneConfig ?? new TuneConfig();
        _run = runConfig ?? new RunConfig();
        _loggers = loggerFactory ?? NullLoggerFactory.Instance;
        _loggerFactoryGiven = loggerFactory is not null;
        _restorePath = restorePath;
        _resume = resume;
        if (_tune.NumSamples < 1) throw new ArgumentOutOfRangeException(nameof(tuneConfig), $"TuneConfig.NumSamples must be at least 1, got {_tune.NumSamples}");
        if (_tune.MaxConcurrentTrials is < 1) throw new ArgumentOutOfRangeException(nameof(tuneConfig), $"TuneConfig.MaxConcurrentTrials must be at least 1, got {_tune.MaxConcurrentTrials}");
        if (_tune.ResultBufferLength < 1) throw new ArgumentOutOfRangeException(nameof(tuneConfig), $"TuneConfig.ResultBufferLength must be at least 1, got {_tune.ResultBufferLength}");
        if (_run.MaxFailures < -1) throw new ArgumentOutOfRangeException(nameof(runConfig), $"RunConfig.MaxFailures must be -1 (unlimited) or more, got {_run.MaxFailures}");
        if (SearchConflict(_tune) is { } conflict) throw new ArgumentException(conflict, nameof(tuneConfig));
        ExperimentPath = restorePath is not null
            ? Path.GetFullPath(restorePath)
            : Path.GetFullPath(Path.Combine(_run.StoragePath ?? "results",
                PathNames.Component(_run.Name ?? $"{trainable}_{_run.TimeProvider.GetLocalNow().ToString("yyyy-MM-dd_HH-mm-ss", CultureInfo.InvariantCulture)}")));
    }

    /// <summary>Why the search settings contradict each other (a setting the chosen search would ignore), or null.</summary>
    private static string? SearchConflict(TuneConfig tune) => tune switch
    {
        { SearchAlgorithm: not null, Searcher: not null } => "TuneConfig.SearchAlgorithm replaces TuneConfig.Searcher: set one of them",
        { SearchAlgorithm: not null, Variants: not null } => "TuneConfig.SearchAlgorithm replaces the basic variant generator: TuneConfig.Variants would be ignored",
        { Searcher: not null, Variants: not null } => "TuneConfig.Variants configures the basic variant generator, which TuneConfig.Searcher replaces: set one of them",
        _ => null,
    };

    /// <summary>The experiment's folder (store, trial folders, checkpoints).</summary>
    public string ExperimentPath { get; }

    /// <summary>
    /// A tuner that continues the experiment in <paramref name="path"/>: unfinished trials resume from their latest persistent
    /// checkpoint; errored ones as <paramref name="resume"/> says. Pass the same search space and algorithms as the original run.
    /// </summary>
    public static Tuner Restore(string path, string trainable, ResumeOptions? resume = null, SearchSpace? paramSpace = null,
        TuneConfig? tuneConfig = null, RunConfig? runConfig = null, TrainableRegistry? registry = null, ILoggerFactory? loggerFactory = null)
    {
        if (!SqliteExperimentStore.Exists(path))
            throw new ArgumentException($"'{path}' holds no experiment to restore (no {SqliteExperimentStore.FileName})", nameof(path));
        return new Tuner(trainable, paramSpace, tuneConfig, runConfig, registry, loggerFactory, path, resume ?? new ResumeOptions());
    }

    /// <summary>
    /// Runs the sweep on a dedicated thread. Opening the experiment happens first, on the caller's thread: bad input and an
    /// experiment owned by another process throw here, before the task exists.
    /// </summary>
    public Task<ResultGrid> FitAsync(CancellationToken cancel = default) => Start(null, cancel);

    /// <summary>
    /// Runs the sweep as <see cref="FitAsync"/> does and streams its progress: read <see cref="TunerRun.Progress"/> with
    /// <c>await foreach</c> while it runs, then <c>await</c> the run for the grid. A snapshot is taken on the controller's
    /// thread every <see cref="RunConfig.SnapshotInterval"/> and at the end; a slow reader never holds the run back (it
    /// gets the newest snapshot and skips the ones it missed). <see cref="RunConfig.OnSnapshot"/>, when set, gets every one.
    /// </summary>
    public TunerRun FitWithProgress(CancellationToken cancel = default)
    {
        var snapshots = TunerRun.CreateChannel();
        var fit = Start(snapshot => snapshots.Writer.TryWrite(snapshot), cancel);
        // The stream ends when the run does, however it ends; the run's outcome is in the task.
        fit.ContinueWith(_ => snapshots.Writer.TryComplete(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return new TunerRun(snapshots.Reader, fit);
    }

    private Task<ResultGrid> Start(Action<ExperimentSnapshot>? progress, CancellationToken cancel)
    {
        var opened = Open();
        try
        {
            return Task.Factory.StartNew(() => Run(opened, cancel, progress), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
        catch
        {
            opened.Dispose();
            throw;
        }
    }

    /// <summary>Runs the sweep to the end (or until <paramref name="cancel"/>) and returns every trial's outcome.</summary>
    public ResultGrid Fit(CancellationToken cancel = default) => Run(Open(), cancel, null);

    /// <summary>
    /// Checks what can be checked without the disk, then takes the experiment's lock and, under it, checks that a new
    /// experiment does not exist yet or that a restored one's store is readable; writes <see cref="RunConfig.ExperimentFiles"/>.
    /// </summary>
    private OpenedExperiment Open()
    {
        var inventory = _run.Inventory ?? DeviceInventory.Detect();
        if (_run.ResourcesPerTrial is { } resources && new DeviceSlotAllocator(inventory).WhyNeverFits(resources) is { } why)
            throw new ResourceRequestException($"resources_per_trial: a trial {why}");
        var scheduler = _tune.Scheduler ?? new FifoScheduler();
        if (!scheduler.SetSearchProperties(_tune.Metric, _tune.Mode))
            throw new ArgumentException($"the scheduler was configured with another metric or mode than the experiment's ({_tune.Metric}, {_tune.Mode})");
        scheduler.Validate();

        bool created = !Directory.Exists(ExperimentPath);
        if (_restorePath is not null && created) throw new ExperimentOpenException($"'{ExperimentPath}' does not exist");
        try
        {
            Directory.CreateDirectory(ExperimentPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ExperimentOpenException($"storage_path '{_run.StoragePath ?? "results"}' is not writable: cannot create the experiment folder '{ExperimentPath}' ({e.Message})", e);
        }
        ExperimentLock? owner = null;
        try
        {
            owner = AcquireLock(created);
            if (_restorePath is null)
            {
                if (SqliteExperimentStore.Exists(ExperimentPath))
                    throw new ExperimentOpenException($"an experiment already exists in '{ExperimentPath}': resume it (torchtrials resume {ExperimentPath}, Tuner.Restore) or choose another name");
                foreach (var (name, text) in _run.ExperimentFiles) File.WriteAllText(Path.Combine(ExperimentPath, PathNames.Component(name)), text);
            }
            else if (_run.KeepStore)
            {
                SqliteExperimentStore.Inspect(ExperimentPath);
            }
            return new OpenedExperiment(owner, inventory, scheduler, created && _restorePath is null);
        }
        catch
        {
            // Only the lock's holder may remove the folder: a process refused the lock may have raced the owner to create it.
            if (owner is not null && created && _restorePath is null) TryDelete(ExperimentPath);
            owner?.Dispose();
            throw;
        }
    }

    private ExperimentLock AcquireLock(bool created)
    {
        try
        {
            return ExperimentLock.Acquire(ExperimentPath);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ExperimentOpenException($"cannot write into the experiment folder '{ExperimentPath}': {e.Message}", e);
        }
        catch (IOException e) when (e is not ExperimentOpenException)
        {
            throw new ExperimentOpenException($"cannot write into the experiment folder '{ExperimentPath}': {e.Message}", e);
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>What <see cref="Open"/> established: the held lock, the machine, the scheduler, and whether this fit created the folder.</summary>
    private sealed record OpenedExperiment(ExperimentLock Lock, DeviceInventory Inventory, ITrialScheduler Scheduler, bool CreatedFolder) : IDisposable
    {
        public void Dispose() => Lock.Dispose();
    }

    private ResultGrid Run(OpenedExperiment opened, CancellationToken cancel, Action<ExperimentSnapshot>? progress)
    {
        using var _ = opened;
        bool started = false;
        try
        {
            return Run(opened, cancel, progress, ref started);
        }
        catch when (opened.CreatedFolder && !started)
        {
            // A new run that failed before its first trial recorded nothing: leave nothing that blocks the corrected rerun.
            TryDelete(ExperimentPath);
            throw;
        }
    }

    private ResultGrid Run(OpenedExperiment opened, CancellationToken cancel, Action<ExperimentSnapshot>? progress, ref bool started)
    {
        var logger = _loggers.CreateLogger("TorchTrials");
        var inventory = opened.Inventory;
        var streams = inventory.Gpus.Any(g => g.IsUsableForTensors) ? CudaStreamApi.TryLoad(out _) : null;
        var allocator = new DeviceSlotAllocator(inventory, streams);
        var executorOptions = new ExecutorOptions
        {
            ReuseTrainables = _tune.ReuseTrainables,
            DeviceCheckpointBudgetBytes = _run.DeviceCheckpointBudgetBytes,
            HostCheckpointBudgetBytes = _run.HostCheckpointBudgetBytes,
            SpillDirectory = Path.Combine(ExperimentPath, ".spill"),
        };
        ITrialExecutor executor = _run.ExecutorFactory is { } factory
            ? factory.Create(new ExecutorSetup(allocator, _registry, executorOptions, _tune.Fusion is { Fuse: FuseMode.Auto } fused ? fused : null,
                _run.ThreadsPerTrial, logger, ExperimentPath))
            : _run.Executor == ExecutorKind.Inline
            ? new InlineTrialExecutor(allocator, _registry, executorOptions)
            : _tune.Fusion is { Fuse: FuseMode.Auto } fusion
                ? new FusedTrialExecutor(allocator, _registry, fusion, executorOptions, streams, _run.ThreadsPerTrial, logger)
                : new ConcurrentTrialExecutor(allocator, _registry, executorOptions, streams, _run.ThreadsPerTrial, logger);

        var template = new TrialTemplate
        {
            TrainableName = _trainable,
            Resources = _run.ResourcesPerTrial,
            Stop = _run.Stop ?? new Dictionary<string, double>(),
            Checkpoint = _run.Checkpoint,
            MaxFailures = _run.MaxFailures,
        };
        var search = _tune.SearchAlgorithm ?? (_tune.Searcher is { } searcher
            ? new SearchGenerator(searcher, _space, template, _tune.NumSamples,
                new SearchGeneratorOptions { Metric = _tune.Metric, Mode = _tune.Mode })
            : new BasicVariantGenerator(_space, template, _tune.NumSamples, (_tune.Variants ?? new BasicVariantOptions()) with { Seed = _tune.Variants?.Seed ?? _tune.Seed }));

        var callbacks = new List<ITrialCallback>(_run.Callbacks);
        var fileLogger = _run.Loggers is { Csv: false, Json: false, TensorBoard: false } ? null : new TrialFileLogger(_run.Loggers, logger, _run.TimeProvider);
        if (fileLogger is not null) callbacks.Add(fileLogger);
        // A logger factory receives the same failures as log entries; printing them too would say everything twice.
        var reporter = _run.Quiet || _loggerFactoryGiven ? null : new ConsoleTrialReporter(_run.ProgressOutput ?? Console.Out);
        if (reporter is not null) callbacks.Add(reporter);
        var name = Path.GetFileName(ExperimentPath);
        if (_run.OnSnapshot + progress is { } onSnapshot)
            callbacks.Add(new SnapshotPublisher(name, executor.DescribeUsage, _tune.Metric, _tune.Mode, _run.SnapshotInterval, onSnapshot, _run.TimeProvider));

        IExperimentStore store = _run.KeepStore ? SqliteExperimentStore.Open(ExperimentPath) : new NullExperimentStore(ExperimentPath);
        var options = ControllerOptions.From(_tune, _run, name, ExperimentPath);
        var scheduler = opened.Scheduler;
        // The pictures of the sweep (issue 13) draw each hyperparameter on its domain's axis; a restore without a space keeps the saved ones.
        var domains = ParamDomains.From(_space, scheduler);
        if (_restorePath is null || _space.Count > 0)
            store.SaveExperimentState(new JsonObject { [ParamDomains.StateKey] = ParamDomains.ToJson(domains) });
        // TensorBoard's HParams dashboard (issue 13): the sweep's dimensions and metric; the trials' sessions join it by tag.
        fileLogger?.WriteExperiment(new TensorBoardExperiment(ExperimentPath, domains, _tune.Metric));
        var controller = _restorePath is null
            ? new TrialController(executor, _registry, search, scheduler, _run.Stopper, callbacks, store, options, logger)
            : TrialController.Resume(store, executor, _registry, _resume, search, scheduler, _run.Stopper, callbacks, options, logger);
        try
        {
            controller.Run(cancel);
            var grid = new ResultGrid(controller.Trials.Select(TrialSummary.Of), ExperimentPath, _tune.Metric, _tune.Mode)
            {
                WasInterrupted = !controller.IsFinished,
            };
            reporter?.RunEnded(grid);
            return grid;
        }
        finally
        {
            started = controller.Trials.Count > 0;
            controller.Dispose();
            fileLogger?.Dispose();
        }
    }
}
