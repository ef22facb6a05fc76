using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using TorchTrials.Gpu;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Spec;

/// <summary>
/// A validated sweep spec, ready to run: the YAML of DESIGN.md's "Sweep spec" read in full, every problem collected
/// and reported at once (key path, line, value, why) before anything runs, and the objects built from it.
/// </summary>
public sealed class SweepPlan
{
    public const string SpecCopyName = "spec.yaml";

    private static readonly string[] TopLevelKeys =
    {
        "name", "storage_path", "trainable", "params", "search_space", "num_samples", "metric", "mode", "scheduler", "searcher",
        "stop", "stoppers", "resources_per_trial", "checkpoint", "failure", "reuse_trainables", "max_concurrent_trials", "seed",
        "executor", "loggers", "inventory", "checkpoint_store", "cluster",
    };

    private bool _savedCopy;

    private SweepPlan(string specText, string specPath)
    {
        SpecText = specText;
        SpecPath = specPath;
    }

    public string SpecText { get; }

    public string SpecPath { get; }

    public string? Name { get; private set; }

    public string StoragePath { get; private set; } = "results";

    public string Trainable { get; private set; } = "";

    public TrainableRegistry Registry { get; private set; } = TrainableRegistry.CreateDefault();

    public SearchSpace Space { get; private set; } = new();

    public TuneConfig Tune { get; private set; } = new();

    public RunConfig Run { get; private set; } = new();

    /// <summary>The cluster the trials run on (spec key <c>cluster</c>, or the override); null to run them in this process.</summary>
    public string? Cluster { get; private set; }

    /// <summary>Reads and validates the spec file; throws <see cref="SpecValidationException"/> listing every problem.</summary>
    /// <param name="savedCopy">
    /// True when <paramref name="path"/> is an experiment's own <see cref="SpecCopyName"/> (resume): keys the spec has
    /// since renamed are read in their old meaning there, so an experiment started before a rename still resumes.
    /// </param>
    /// <param name="cluster">
    /// Where the run may go when the spec (or <paramref name="clusterOverride"/>) names a cluster: builds the executor
    /// factory from its text and throws <see cref="FormatException"/> for a text it cannot read. The runner cannot reach a
    /// cluster itself (TorchTrials.Cluster depends on it, not the other way), so without one such a spec is refused.
    /// </param>
    public static SweepPlan Load(string path, string? storagePathOverride = null, string? nameOverride = null, DeviceInventory? inventoryOverride = null,
        bool savedCopy = false, string? clusterOverride = null, Func<string, ITrialExecutorFactory>? cluster = null)
    {
        if (!File.Exists(path))
            throw new SpecValidationException(path, new[] { new SpecError("(file)", null, $"'{path}' does not exist") });
        return Parse(File.ReadAllText(path), path, storagePathOverride, nameOverride, inventoryOverride, savedCopy, clusterOverride, cluster);
    }

    public static SweepPlan Parse(string text, string source, string? storagePathOverride = null, string? nameOverride = null, DeviceInventory? inventoryOverride = null,
        bool savedCopy = false, string? clusterOverride = null, Func<string, ITrialExecutorFactory>? cluster = null)
    {
        var (root, lines) = YamlJson.Parse(text, source);
        var errors = new List<SpecError>();
        if (root is not JsonObject obj)
            throw new SpecValidationException(source, new[] { new SpecError("(document)", 1, "the spec must be a mapping of keys such as trainable, search_space, metric") });
        var plan = new SweepPlan(text, Path.GetFullPath(source)) { _savedCopy = savedCopy };
        var spec = new SpecReader(obj, "", lines, errors);
        plan.Read(spec, Path.GetDirectoryName(Path.GetFullPath(source)) ?? ".", storagePathOverride, nameOverride, inventoryOverride, clusterOverride, cluster);
        spec.Finish(TopLevelKeys);
        if (errors.Count > 0) throw new SpecValidationException(source, errors.OrderBy(e => e.Line ?? int.MaxValue).ToList());
        return plan;
    }

    /// <summary>
    /// A tuner for a new run of this plan; the spec is kept in the experiment as <see cref="SpecCopyName"/> so the run can be
    /// resumed. A caller that shows the progress itself (the CLI, through <see cref="Tuner.FitWithProgress"/>) passes
    /// <paramref name="showsProgress"/>: the tuner then prints no lines of its own.
    /// </summary>
    public Tuner CreateTuner(bool showsProgress = false, ILoggerFactory? loggerFactory = null) =>
        new(Trainable, Space, Tune, Run with { Quiet = Run.Quiet || showsProgress, ExperimentFiles = new Dictionary<string, string> { [SpecCopyName] = SpecText } }, Registry, loggerFactory);

    /// <summary>A tuner continuing this plan's experiment in <paramref name="experimentPath"/>; quiet when <paramref name="showsProgress"/>, as <see cref="CreateTuner"/>.</summary>
    public Tuner RestoreTuner(string experimentPath, ResumeOptions resume, bool showsProgress = false, ILoggerFactory? loggerFactory = null) =>
        Tuner.Restore(experimentPath, Trainable, resume, Space, Tune, Run with { Quiet = Run.Quiet || showsProgress }, Registry, loggerFactory);

    private void Read(SpecReader spec, string specDirectory, string? storagePathOverride, string? nameOverride, DeviceInventory? inventoryOverride,
        string? clusterOverride, Func<string, ITrialExecutorFactory>? clusterFactory)
    {
        var specName = spec.String("name");
        var specStorage = spec.String("storage_path", "results")!;
        // Without a name, each run gets its own folder: the spec's file name and the start time.
        Name = nameOverride ?? specName ?? $"{Path.GetFileNameWithoutExtension(SpecPath)}_{DateTime.Now.ToString("yyyy-MM-dd_HH-mm-ss", System.Globalization.CultureInfo.InvariantCulture)}";
        if (Name is not null && (Name.Length == 0 || Name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || Name is "." or ".."))
            spec.Error("name", $"must be a folder name without path separators, got '{Name}'");
        StoragePath = storagePathOverride ?? specStorage;
        long seed = spec.Int("seed", 0) ?? 0;

        ReadTrainable(spec, specDirectory);
        var fixedParams = spec.ObjectValue("params");
        var spaceSpec = spec.ObjectValue("search_space") ?? new JsonObject();
        try
        {
            var merged = new JsonObject();
            if (fixedParams is not null)
                foreach (var (k, v) in fixedParams) merged[k] = v?.DeepClone();
            foreach (var (k, v) in spaceSpec)
            {
                if (merged.ContainsKey(k)) spec.Error("search_space." + k, "is also set in params: a key is either fixed or searched");
                merged[k] = v?.DeepClone();
            }
            Space = SearchSpace.FromSpec(merged);
        }
        catch (SearchSpaceException e)
        {
            foreach (var problem in e.Problems)
            {
                var key = (fixedParams?.ContainsKey(problem.Key) == true ? "params." : "search_space.") + problem.Key;
                spec.Errors.Add(new SpecError(key, spec.LineOf(key), problem.Message));
            }
        }

        int numSamples = spec.Int("num_samples", 1, min: 1) ?? 1;
        var metric = spec.String("metric");
        var modeText = spec.String("mode", null, new[] { "max", "min" });
        MetricMode? mode = modeText is null ? null : modeText == "max" ? MetricMode.Max : MetricMode.Min;
        // A mode given but invalid is already reported; saying it is also missing would mislead.
        bool modeRejected = modeText is null && spec.Raw("mode") is not null;
        if ((metric is null) != (mode is null) && !modeRejected)
            spec.Error(metric is null ? "metric" : "mode", metric is null ? "is required when mode is set" : "is required when metric is set (max or min)");

        var scheduler = AlgorithmCatalog.Scheduler(spec.Child("scheduler"), spec.Has("scheduler") ? null : spec, metric, mode, seed);
        var (searcher, variants) = AlgorithmCatalog.Searcher(spec.Child("searcher"), metric, mode, seed, numSamples);
        var stop = ReadStop(spec);
        var stopper = AlgorithmCatalog.Stoppers(spec, "stoppers", metric, mode);
        var resources = ReadResources(spec.Child("resources_per_trial"));
        var checkpoint = ReadCheckpoint(spec.Child("checkpoint"), _savedCopy);
        var (maxFailures, failFast) = ReadFailure(spec.Child("failure"));
        bool reuse = spec.Bool("reuse_trainables", false) ?? false;
        int? maxConcurrent = spec.Int("max_concurrent_trials", null, min: 1);
        var (executor, buffer, threads, runAhead, fusion) = ReadExecutor(spec.Child("executor"));
        var loggers = ReadLoggers(spec.Child("loggers"));
        var store = spec.Child("checkpoint_store");
        long deviceBudget = store?.Bytes("device_budget", 2L << 30) ?? 2L << 30;
        long hostBudget = store?.Bytes("host_budget", 4L << 30) ?? 4L << 30;
        store?.Finish();

        DeviceInventory? inventory = inventoryOverride;
        if (spec.String("inventory") is { } inventoryText && inventory is null)
        {
            try { inventory = DeviceInventory.Parse(inventoryText); }
            catch (Exception e) when (e is FormatException or ArgumentException) { spec.Error("inventory", e.Message); }
        }
        var (cluster, executorFactory) = ReadCluster(spec, clusterOverride, clusterFactory, inventory is not null && inventoryOverride is null);
        // Checked against the machine the run would use (detected unless simulated), so a request it can never grant is bad input before anything is created.
        // On a cluster the workers' machines decide: the cluster executor refuses a request no worker can hold.
        if (cluster is null && resources is not null && new DeviceSlotAllocator(inventory ?? DeviceInventory.Detect()).WhyNeverFits(resources) is { } why)
            spec.Error("resources_per_trial", $"a trial {why}");

        if (scheduler is ITrialScheduler s)
        {
            if (!s.SetSearchProperties(metric, mode))
                spec.Error("scheduler.metric", "differs from the experiment's metric or mode");
            else
            {
                try { s.Validate(); }
                catch (InvalidOperationException) { spec.Error("scheduler", "needs a metric and a mode: set metric and mode at the top level or in the scheduler section"); }
            }
        }

        Tune = new TuneConfig
        {
            Metric = metric,
            Mode = mode,
            Scheduler = scheduler,
            Searcher = searcher,
            Variants = variants,
            NumSamples = numSamples,
            MaxConcurrentTrials = maxConcurrent,
            ReuseTrainables = reuse,
            Seed = seed,
            ResultBufferLength = buffer,
            RunAhead = runAhead,
            Fusion = fusion,
        };
        Run = new RunConfig
        {
            Name = Name,
            StoragePath = StoragePath,
            Stop = stop,
            Stopper = stopper,
            Checkpoint = checkpoint,
            MaxFailures = maxFailures,
            FailFast = failFast,
            ResourcesPerTrial = resources,
            Loggers = loggers,
            Inventory = inventory,
            Executor = executor,
            ThreadsPerTrial = threads,
            DeviceCheckpointBudgetBytes = deviceBudget,
            HostCheckpointBudgetBytes = hostBudget,
            ExecutorFactory = executorFactory,
        };
        Cluster = cluster;
    }

    private static (string? Cluster, ITrialExecutorFactory? Factory) ReadCluster(SpecReader spec, string? clusterOverride, Func<string, ITrialExecutorFactory>? factory,
        bool specInventory)
    {
        var text = clusterOverride ?? spec.String("cluster");
        if (clusterOverride is not null) spec.String("cluster");
        if (text is null) return (null, null);
        string key = clusterOverride is null ? "cluster" : "(--cluster)";
        if (specInventory)
        {
            spec.Error("inventory", "describes this machine, but the trials run on a cluster: give each worker its own (torchtrials worker --inventory)");
            return (null, null);
        }
        if (factory is null)
        {
            spec.Error(key, "this program cannot run trials on a cluster: run the spec with the torchtrials command, or give the Tuner a ClusterExecutorFactory");
            return (null, null);
        }
        try
        {
            return (text, factory(text));
        }
        catch (FormatException e)
        {
            spec.Error(key, e.Message);
            return (null, null);
        }
    }

    private void ReadTrainable(SpecReader spec, string specDirectory)
    {
        var node = spec.Raw("trainable");
        string? assembly = null;
        switch (node)
        {
            case null:
                spec.Error("trainable", "is required: the registered name of the trainable to sweep (for example mlp_digits)");
                return;
            case JsonValue v when v.TryGetValue<string>(out var name):
                Trainable = name;
                break;
            case JsonObject:
                var t = spec.Child("trainable")!;
                Trainable = t.String("name") ?? "";
                if (Trainable.Length == 0) t.Error("name", "is required");
                assembly = t.String("assembly");
                t.Finish();
                break;
            default:
                spec.Error("trainable", $"must be a name or a mapping with name and assembly, got {node.ToJsonString()}");
                return;
        }
        if (assembly is not null)
        {
            var full = Path.IsPathRooted(assembly) ? assembly : Path.Combine(specDirectory, assembly);
            try
            {
                Registry.RegisterAssemblyFile(full);
            }
            catch (Exception e) when (e is FileNotFoundException or BadImageFormatException or FileLoadException or InvalidOperationException)
            {
                spec.Error("trainable.assembly", e.Message);
                return;
            }
        }
        if (Trainable.Length > 0 && !Registry.Contains(Trainable))
            spec.Error("trainable", $"'{Trainable}' is not a registered trainable (registered: {string.Join(", ", Registry.Entries.Select(e => e.Name).Order(StringComparer.Ordinal))}){DidYouMean.Suggest(Trainable, Registry.Entries.Select(e => e.Name))}");
        else if (Registry.TryGet(Trainable, out var entry) && entry.MissingPrerequisite?.Invoke() is { } missing)
            spec.Error("trainable", missing);
    }

    private static Dictionary<string, double>? ReadStop(SpecReader spec)
    {
        var stop = spec.Child("stop");
        if (stop is null) return null;
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (key, _) in stop.Object.ToList())
            if (stop.Double(key) is { } value) result[key] = value;
        return result;
    }

    private static Resources? ReadResources(SpecReader? r)
    {
        if (r is null) return null;
        double cpu = r.Double("cpu", 1, min: 0) ?? 1;
        double gpu = r.Double("gpu", 0, min: 0) ?? 0;
        long memory = r.Bytes("memory", 0) ?? 0;
        long gpuMemory = r.Bytes("gpu_memory", 0) ?? 0;
        double extraCpu = r.Double("extra_cpu", 0, min: 0) ?? 0;
        double extraGpu = r.Double("extra_gpu", 0, min: 0) ?? 0;
        var custom = new Dictionary<string, double>();
        if (r.Child("custom") is { } c)
            foreach (var (key, _) in c.Object.ToList())
                if (c.Double(key, min: 0) is { } v) custom[key] = v;
        r.Finish();
        try
        {
            return new Resources(cpu, gpu, memory, gpuMemory, custom, extraCpu, extraGpu);
        }
        catch (ArgumentException e)
        {
            r.Error("cpu", e.Message);
            return null;
        }
    }

    private static CheckpointConfig ReadCheckpoint(SpecReader? r, bool savedCopy)
    {
        if (r is null) return CheckpointConfig.None;
        var storage = r.String("storage", "disk", new[] { "disk", "memory" });
        // The spec once called it keep; it is num_to_keep now, as in Ray and CheckpointConfig.NumToKeep. A new spec with
        // keep is refused; an experiment's saved copy from before the rename means num_to_keep by it, so it still resumes.
        int? retiredKeep = null;
        if (r.Has("keep"))
        {
            if (savedCopy && !r.Has("num_to_keep"))
                retiredKeep = r.Int("keep", null, min: 1);
            else
            {
                r.Raw("keep");
                r.Error("keep", "unknown key (did you mean 'num_to_keep'?)");
            }
        }
        var config = new CheckpointConfig
        {
            Frequency = r.Int("frequency", 0, min: 0) ?? 0,
            AtEnd = r.Bool("at_end", false) ?? false,
            NumToKeep = r.Int("num_to_keep", null, min: 1) ?? retiredKeep,
            ScoreAttribute = r.String("score_attribute", TrialResult.TrainingIterationKey)!,
            Storage = storage == "memory" ? CheckpointStorage.Memory : CheckpointStorage.Persistent,
        };
        r.Finish();
        return config;
    }

    private static (int MaxFailures, FailFastMode FailFast) ReadFailure(SpecReader? r)
    {
        if (r is null) return (0, FailFastMode.Off);
        int max = r.Int("max_failures", 0, min: -1) ?? 0;
        var raw = r.Raw("fail_fast");
        var mode = raw switch
        {
            null => FailFastMode.Off,
            JsonValue v when v.TryGetValue<bool>(out var b) => b ? FailFastMode.StopAll : FailFastMode.Off,
            JsonValue v when v.TryGetValue<string>(out var s) && s == "raise" => FailFastMode.Raise,
            _ => Invalid(),
        };
        r.Finish();
        return (max, mode);

        FailFastMode Invalid()
        {
            r.Error("fail_fast", $"must be true, false or raise, got {raw!.ToJsonString()}");
            return FailFastMode.Off;
        }
    }

    private static (ExecutorKind Kind, int Buffer, int? Threads, bool RunAhead, FusionOptions? Fusion) ReadExecutor(SpecReader? r)
    {
        var defaults = new TuneConfig();
        if (r is null) return (ExecutorKind.Concurrent, defaults.ResultBufferLength, null, defaults.RunAhead, null);
        var kind = r.String("type", "concurrent", new[] { "concurrent", "inline" }) == "inline" ? ExecutorKind.Inline : ExecutorKind.Concurrent;
        int buffer = r.Int("result_buffer_length", min: 1) ?? defaults.ResultBufferLength;
        int? threads = r.Int("threads_per_trial", null, min: 1);
        bool runAhead = r.Bool("run_ahead") ?? defaults.RunAhead;
        var fuse = r.String("fuse", "off", new[] { "auto", "off" }) == "auto" ? FuseMode.Auto : FuseMode.Off;
        int maxMembers = r.Int("max_members", FusionOptions.DefaultMaxMembers, min: 1) ?? FusionOptions.DefaultMaxMembers;
        if (fuse == FuseMode.Auto && kind == ExecutorKind.Inline)
            r.Error("fuse", "auto needs the concurrent executor (type: inline never fuses)");
        r.Finish();
        return (kind, buffer, threads, runAhead, new FusionOptions { Fuse = fuse, MaxMembers = maxMembers });
    }

    private static TrialFileOptions ReadLoggers(SpecReader? r)
    {
        if (r is null) return new TrialFileOptions();
        var options = new TrialFileOptions
        {
            Csv = r.Bool("csv", true) ?? true,
            Json = r.Bool("json", true) ?? true,
            TensorBoard = r.Bool("tensorboard", true) ?? true,
        };
        r.Finish();
        return options;
    }
}
