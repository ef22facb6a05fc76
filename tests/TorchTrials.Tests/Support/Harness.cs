using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Support;

/// <summary>A temporary directory removed when the test ends.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "torchtrials-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>
/// The analogue of ray.init(num_cpus=..., num_gpus=..., resources=...) plus TrialRunner(): a simulated machine,
/// an inline executor and a controller writing to a temporary experiment directory.
/// </summary>
public sealed class Harness : IDisposable
{
    private readonly TempDir? _ownedDir;

    public Harness(
        int cpus,
        int gpus = 0,
        IReadOnlyDictionary<string, double>? custom = null,
        ITrialScheduler? scheduler = null,
        ISearchAlgorithm? search = null,
        IEnumerable<ITrialCallback>? callbacks = null,
        IStopper? stopper = null,
        FailFastMode failFast = FailFastMode.Off,
        bool reuse = false,
        string? directory = null,
        bool sqlite = false,
        TrainableRegistry? registry = null,
        long seed = 0,
        TimeProvider? clock = null)
    {
        if (directory is null)
        {
            _ownedDir = new TempDir();
            directory = _ownedDir.Path;
        }
        Directory = directory;
        Registry = registry ?? TrainableRegistry.CreateDefault();
        Allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(cpus, gpus, 16, custom));
        Executor = new InlineTrialExecutor(Allocator, Registry, new ExecutorOptions { ReuseTrainables = reuse, SpillDirectory = System.IO.Path.Combine(directory, "spill") });
        Store = sqlite ? SqliteExperimentStore.Open(directory) : new NullExperimentStore(directory);
        Controller = new TrialController(Executor, Registry, search, scheduler, stopper, callbacks: callbacks, store: Store,
            options: new ControllerOptions { ExperimentDirectory = directory, FailFast = failFast, EventWait = TimeSpan.Zero, Seed = seed,
                TimeProvider = clock ?? TimeProvider.System });
    }

    public string Directory { get; }

    public TrainableRegistry Registry { get; }

    public DeviceSlotAllocator Allocator { get; }

    public InlineTrialExecutor Executor { get; }

    public IExperimentStore Store { get; }

    public TrialController Controller { get; }

    public IReadOnlyList<Trial> Trials => Controller.Trials;

    public void Add(params Trial[] trials)
    {
        foreach (var t in trials) Controller.AddTrial(t);
    }

    public void RunToEnd(int maxSteps = 10_000)
    {
        for (int i = 0; i < maxSteps && !Controller.IsFinished; i++) Controller.Step();
        Assert.True(Controller.IsFinished, "the experiment did not finish within the step budget");
    }

    public void Dispose()
    {
        Controller.Dispose();
        _ownedDir?.Dispose();
    }
}

/// <summary>Ray's TrialStatusSnapshot(Taker): records how many trials ran at once after every step.</summary>
public sealed class TrialStatusSnapshotTaker : ITrialCallback
{
    private readonly List<IReadOnlyList<TrialStatus>> _snapshots = new();

    public void OnStepEnd(int iteration, IReadOnlyList<Trial> trials) => _snapshots.Add(trials.Select(t => t.Status).ToList());

    public int MaxRunningTrials() => _snapshots.Count == 0 ? 0 : _snapshots.Max(s => s.Count(x => x == TrialStatus.Running));

    public bool AllTrialsAreTerminated() => _snapshots.Count > 0 && _snapshots[^1].All(s => s == TrialStatus.Terminated);
}

/// <summary>Ray's TrialResultObserver: tells whether a result arrived since it was last asked.</summary>
public sealed class TrialResultObserver : ITrialCallback
{
    private bool _received;

    public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result) => _received = true;

    public void Reset() => _received = false;

    public bool JustReceivedAResult()
    {
        bool r = _received;
        _received = false;
        return r;
    }
}

/// <summary>Ray's create_mock_components: a search algorithm and a scheduler that record the trials they were told errored.</summary>
public sealed class RecordingSearch : ISearchAlgorithm
{
    private readonly TrialListSearch _inner = new();

    public List<string> ErroredTrials { get; } = new();

    public List<string> CompletedTrials { get; } = new();

    public Trial? NextTrial() => _inner.NextTrial();

    public bool IsFinished => _inner.IsFinished;

    public void SetFinished() => _inner.SetFinished();

    public int TotalSamples => 0;

    public void OnTrialResult(string trialId, TrialResult result) { }

    public void OnTrialComplete(string trialId, TrialResult? result, TrialOutcome outcome)
    {
        if (outcome == TrialOutcome.Errored) ErroredTrials.Add(trialId);
        else CompletedTrials.Add(trialId);
    }

    public System.Text.Json.Nodes.JsonNode? SaveState() => null;

    public void RestoreState(System.Text.Json.Nodes.JsonNode state) { }
}

public sealed class RecordingScheduler : TrialSchedulerBase
{
    public List<string> ErroredTrials { get; } = new();

    public List<string> CompletedTrials { get; } = new();

    public override void OnTrialError(ITrialControl control, Trial trial) => ErroredTrials.Add(trial.Id);

    public override void OnTrialComplete(ITrialControl control, Trial trial, TrialResult? result) => CompletedTrials.Add(trial.Id);
}
