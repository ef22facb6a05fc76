using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Benchmarks;

/// <summary>
/// Issue 12 (a): training throughput of M digits MLPs (depth 2, batch 32, Adam, one LibTorch thread per model) trained
/// one at a time, on two concurrent threads, and fused into one array of M lanes (<see cref="Trainables.Fusion.FusedMlpArray"/>),
/// for M = 16 and 64 and widths 32, 64, 128, 256: model-epochs per second. One at a time and two threads are measured on
/// 8 models (a rate per model that does not depend on M); the fused array on all M. Goal: fused at least 4x one at a time
/// at widths up to 64.
/// </summary>
public sealed class FusionThroughputBenchmark : IBenchmark
{
    public string Name => "fusion-throughput";

    public string Title => "Fused arrays: digits MLP model-epochs/s, fused vs one at a time vs two threads";

    private static readonly int[] Widths = { 32, 64, 128, 256 };

    public BenchOutcome Run(BenchOptions options)
    {
        var measurements = new List<Measurement>();
        var notes = new List<string>();
        double worstSmallSpeedup = double.MaxValue;
        var registry = TrainableRegistry.CreateDefault();
        var entry = registry.Get("mlp_digits");
        int repeats = Math.Max(1, Math.Min(options.Repeats, 3));
        // Untimed: data, JIT and LibTorch's first-call costs, so the first measured cell does not pay them.
        var warm = TrialConfig.From(("width", 32), ("depth", 2), ("batch_size", 32), ("lr", 0.003), ("optimizer", "adam"));
        AloneRate(entry, warm, 2, threads: 1);
        AloneRate(entry, warm, 2, threads: 2);
        FusedRate(entry, warm, 16);
        foreach (int width in Widths)
        {
            var config = TrialConfig.From(("width", width), ("depth", 2), ("batch_size", 32), ("lr", 0.003), ("optimizer", "adam"));
            var alone = Enumerable.Range(0, repeats).Select(_ => AloneRate(entry, config, 8, threads: 1)).ToList();
            var two = Enumerable.Range(0, repeats).Select(_ => AloneRate(entry, config, 8, threads: 2)).ToList();
            measurements.Add(new($"width {width}: one at a time", "model-epochs/s", alone));
            measurements.Add(new($"width {width}: two threads", "model-epochs/s", two));
            foreach (int members in new[] { 16, 64 })
            {
                var fused = Enumerable.Range(0, repeats).Select(_ => FusedRate(entry, config, members)).ToList();
                measurements.Add(new($"width {width}: {members} fused", "model-epochs/s", fused));
                double speedup = Stats.Median(fused) / Stats.Median(alone);
                notes.Add($"width {width}, {members} members: fused {speedup.ToString("0.0", CultureInfo.InvariantCulture)}x one at a time, {(Stats.Median(fused) / Stats.Median(two)).ToString("0.0", CultureInfo.InvariantCulture)}x two threads");
                if (width <= 64) worstSmallSpeedup = Math.Min(worstSmallSpeedup, speedup);
            }
        }
        return new BenchOutcome(Name, Title, ">= 4x one at a time at width <= 64 (16 and 64 members)", measurements,
            "worst fused / one-at-a-time ratio at width <= 64", worstSmallSpeedup, worstSmallSpeedup >= 4,
            string.Join("; ", notes) + $". Machine: {Environment.ProcessorCount} cores; 1 LibTorch thread per model or array.");
    }

    /// <summary>Model-epochs per second of <paramref name="models"/> models trained alone, split over <paramref name="threads"/> threads (2 epochs each, after a warm-up epoch).</summary>
    private static double AloneRate(RegisteredTrainable entry, TrialConfig config, int models, int threads)
    {
        var watch = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            torch.set_num_threads(1);
            for (int m = t; m < models; m += threads)
            {
                using var host = TrainableHost.Create(entry, config, Context($"m{m}", m));
                host.Train();
                host.Train();
            }
        })).ToList();
        // The warm-up: one epoch outside the clock, so the first model does not pay for the data and JIT.
        torch.set_num_threads(1);
        using (var warm = TrainableHost.Create(entry, config, Context("warm", 99))) warm.Train();
        watch.Restart();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        return models * 2 / watch.Elapsed.TotalSeconds;
    }

    private static double FusedRate(RegisteredTrainable entry, TrialConfig config, int members)
    {
        torch.set_num_threads(1);
        using var array = entry.CreateFusedArray!(new FusedArrayContext { ArrayId = "bench", Key = entry.FusionKey!(config)!, Capacity = members, Slot = Slot() });
        var lanes = Enumerable.Range(0, members).Select(i => new FusedLane(i) { Trial = Context($"l{i}", i), Config = config }).ToList();
        foreach (var lane in lanes) array.SetupLane(lane);
        Epoch(array, lanes);
        var watch = Stopwatch.StartNew();
        Epoch(array, lanes);
        Epoch(array, lanes);
        return members * 2 / watch.Elapsed.TotalSeconds;
    }

    internal static void Epoch(FusedTrainable array, List<FusedLane> lanes)
    {
        using var scope = torch.NewDisposeScope();
        foreach (var (metrics, _) in array.Step(lanes))
            if (metrics is not null)
                foreach (var (_, value) in metrics.Entries)
                    (value as torch.Tensor)?.Dispose();
        foreach (var lane in lanes) lane.Iteration++;
    }

    /// <summary>Where the models train: the CPU, or with <see cref="UseCuda"/> one GPU of this machine.</summary>
    internal static bool UseCuda { get; set; }

    internal static DeviceSlot Slot() => UseCuda
        ? new DeviceSlotAllocator(DeviceInventory.Detect()).TryAllocate(new Resources(cpu: 1, gpu: 0.5), "bench")!
        : new DeviceSlotAllocator(DeviceInventory.Simulated(1)).TryAllocate(new Resources(cpu: 1), "bench")!;

    internal static TrainableContext Context(string id, long seed) => new() { TrialId = id, Slot = Slot(), Seed = seed };

    internal static (double Alone, double Fused) GpuRates(int members)
    {
        var entry = TrainableRegistry.CreateDefault().Get("mlp_digits");
        var config = TrialConfig.From(("width", 64), ("depth", 2), ("batch_size", 32), ("lr", 0.003), ("optimizer", "adam"));
        UseCuda = true;
        try
        {
            AloneRate(entry, config, 2, threads: 1);
            return (AloneRate(entry, config, 8, threads: 1), FusedRate(entry, config, members));
        }
        finally
        {
            UseCuda = false;
        }
    }
}

/// <summary>
/// Issue 12 (c): on a CUDA machine, 64 small digits MLPs (width 64, depth 2, batch 32) fused into one array vs one after
/// another on one GPU, model-epochs/s. Goal: at least 10x. Without CUDA it reports that it did not run (build/gpu-check.sh
/// runs it on a GPU machine).
/// </summary>
public sealed class FusionGpuBenchmark : IBenchmark
{
    public string Name => "fusion-gpu";

    public string Title => "Fused arrays on a GPU: 64 small trials fused vs one after another";

    public BenchOutcome Run(BenchOptions options)
    {
        const string Goal = ">= 10x one after another";
        if (!TorchSharp.torch.cuda.is_available())
            return new BenchOutcome(Name, Title, Goal, Array.Empty<Measurement>(), "fused / one after another", null, null,
                "did not run: no CUDA device is available to TorchSharp on this machine");
        var (alone, fused) = FusionThroughputBenchmark.GpuRates(64);
        return new BenchOutcome(Name, Title, Goal,
            new[] { new Measurement("one after another", "model-epochs/s", new[] { alone }), new Measurement("64 fused", "model-epochs/s", new[] { fused }) },
            "fused / one after another", fused / alone, fused / alone >= 10, $"device: {TorchSharp.torch.cuda.device_count()} CUDA device(s)");
    }
}

/// <summary>
/// Issue 12 (b): the 1000-trial ASHA digits sweep (lr loguniform 1e-4..0.1, width {32, 64, 128, 256}, depth {1, 2, 3},
/// dropout uniform 0..0.3, batch size {32, 64, 128}, optimizer {adam, sgd}; ASHA max_t 30, grace 1, reduction factor 3;
/// stop at 30; 1 CPU per trial on all cores; no trial files) with fusion off and auto, side by side per seed, in
/// alternating order: wall time, best val_accuracy, errored trials. Goal: fused under 30 s with best val_accuracy >= 0.98
/// and no errored trial.
/// </summary>
public sealed class FusionSweepBenchmark : IBenchmark
{
    public string Name => "fusion-sweep";

    public string Title => "Fused arrays: 1000-trial ASHA digits sweep, fuse off vs auto";

    public BenchOutcome Run(BenchOptions options)
    {
        int seeds = options.Quick ? 1 : Math.Max(1, Math.Min(options.Repeats, 3));
        int samples = options.Quick ? 200 : 1000;
        var modes = new[] { FuseMode.Off, FuseMode.Auto };
        var seconds = modes.ToDictionary(m => m, _ => new List<double>());
        var best = modes.ToDictionary(m => m, _ => new List<double>());
        int errors = 0;
        var notes = new List<string>();
        for (int s = 0; s < seeds; s++)
        {
            long seed = 100 + s;
            var line = new List<string>();
            // Alternate the order per seed, so a machine that slows down over the run does not favour one mode.
            foreach (var mode in modes.Skip(s % modes.Length).Concat(modes.Take(s % modes.Length)))
            {
                var outcome = Sweep(options, seed, samples, mode);
                seconds[mode].Add(outcome.Seconds);
                best[mode].Add(outcome.Best);
                if (mode == FuseMode.Auto) errors += outcome.Errors;
                line.Add($"{Label(mode)} {outcome.Seconds:0.0} s best {outcome.Best:0.000} ({outcome.Errors} errored, {outcome.Arrays} arrays)");
            }
            notes.Add($"seed {seed}: " + string.Join(", ", line));
        }
        var measurements = modes.Select(m => new Measurement($"fuse {Label(m)}", "s", seconds[m]))
            .Concat(modes.Select(m => new Measurement($"fuse {Label(m)} best val_accuracy", "", best[m])))
            .ToList();
        double ratio = Stats.Median(seconds[FuseMode.Off]) / Stats.Median(seconds[FuseMode.Auto]);
        bool met = Stats.Median(seconds[FuseMode.Auto]) < 30 && best[FuseMode.Auto].Min() >= 0.98 && errors == 0;
        return new BenchOutcome(Name, Title, $"fused under 30 s, best val_accuracy >= 0.98, no errored trial ({samples} trials)", measurements,
            "off / auto wall time", ratio, met, string.Join("; ", notes) + $". Machine: {Environment.ProcessorCount} cores.");
    }

    private static string Label(FuseMode mode) => mode.ToString().ToLowerInvariant();

    private sealed record SweepOutcome(double Seconds, double Best, int Errors, int Arrays);

    private static SweepOutcome Sweep(BenchOptions options, long seed, int samples, FuseMode fuse)
    {
        var space = new SearchSpace
        {
            { "lr", Domain.LogUniform(1e-4, 0.1) },
            { "width", Domain.Choice(32, 64, 128, 256) },
            { "depth", Domain.Choice(1, 2, 3) },
            { "dropout", Domain.Uniform(0, 0.3) },
            { "batch_size", Domain.Choice(32, 64, 128) },
            { "optimizer", Domain.Choice("adam", "sgd") },
        };
        var tuner = new Tuner("mlp_digits", space,
            new TuneConfig
            {
                Metric = "val_accuracy",
                Mode = MetricMode.Max,
                NumSamples = samples,
                Seed = seed,
                Scheduler = new AshaScheduler(new AshaOptions { MaxT = 30, GracePeriod = 1, ReductionFactor = 3, Seed = (int)seed }),
                Fusion = fuse == FuseMode.Off ? FusionOptions.Off : new FusionOptions { Fuse = fuse },
            },
            new RunConfig
            {
                StoragePath = options.WorkDirectory,
                Quiet = true,
                Name = $"fusion-{Label(fuse)}-{seed}-{Guid.NewGuid().ToString("N")[..6]}",
                Stop = Stop.AfterIterations(30),
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(Environment.ProcessorCount),
                Loggers = TrialFileOptions.None,
            });
        var watch = Stopwatch.StartNew();
        var grid = tuner.Fit();
        double seconds = watch.Elapsed.TotalSeconds;
        double best = grid.Where(t => t.LastResult is not null).Max(t => t.LastResult!.TryGetDouble("val_accuracy", out var v) ? v : 0);
        int arrays = grid.Select(t => t.Lane?.Split('.')[0]).Where(a => a is not null).Distinct().Count();
        return new SweepOutcome(seconds, best, grid.NumErrors, arrays);
    }
}

/// <summary>
/// Issue 12, why (b) misses: model-epochs/s of a 16-lane digits MLP array when only L of its lanes train (the others stopped
/// by a scheduler), L = 1, 2, 4, 8, 16, against one model alone; widths 64 and 256, depth 2, batch 32, Adam and SGD.
/// </summary>
public sealed class FusionLanesBenchmark : IBenchmark
{
    public string Name => "fusion-lanes";

    public string Title => "Fused arrays: model-epochs/s with L of 16 lanes training vs one model alone";

    public BenchOutcome Run(BenchOptions options)
    {
        var measurements = new List<Measurement>();
        var notes = new List<string>();
        var entry = TrainableRegistry.CreateDefault().Get("mlp_digits");
        foreach (var optimizer in new[] { "adam", "sgd" })
            foreach (int width in new[] { 64, 256 })
            {
                var config = TrialConfig.From(("width", width), ("depth", 2), ("batch_size", 32), ("lr", 0.003), ("optimizer", optimizer), ("dropout", 0.1));
                torch.set_num_threads(1);
                double alone = Alone(entry, config);
                measurements.Add(new($"{optimizer} width {width}: alone", "model-epochs/s", new[] { alone }));
                var line = new List<string>();
                foreach (int live in new[] { 1, 2, 4, 8, 16 })
                {
                    double fused = Fused(entry, config, 16, live);
                    measurements.Add(new($"{optimizer} width {width}: {live} of 16 lanes", "model-epochs/s", new[] { fused }));
                    line.Add($"{live}: {(fused / alone).ToString("0.00", CultureInfo.InvariantCulture)}x");
                }
                notes.Add($"{optimizer} width {width}: " + string.Join(", ", line));
            }
        return new BenchOutcome(Name, Title, "(diagnostic)", measurements, "", null, null, string.Join("; ", notes));
    }

    private static double Alone(RegisteredTrainable entry, TrialConfig config)
    {
        using (var warm = TrainableHost.Create(entry, config, Context("warm", 99))) warm.Train();
        var watch = Stopwatch.StartNew();
        for (int m = 0; m < 3; m++)
        {
            using var host = TrainableHost.Create(entry, config, Context($"m{m}", m));
            host.Train();
        }
        return 3 / watch.Elapsed.TotalSeconds;
    }

    private static double Fused(RegisteredTrainable entry, TrialConfig config, int capacity, int live)
    {
        using var array = entry.CreateFusedArray!(new FusedArrayContext { ArrayId = "bench", Key = entry.FusionKey!(config)!, Capacity = capacity, Slot = Slot() });
        var lanes = Enumerable.Range(0, capacity).Select(i => new FusedLane(i) { Trial = Context($"l{i}", i), Config = config }).ToList();
        foreach (var lane in lanes) array.SetupLane(lane);
        var stepped = lanes.Where((_, i) => i % (capacity / live) == 0).Take(live).ToList();
        Epoch(array, stepped);
        var watch = Stopwatch.StartNew();
        int epochs = live >= 8 ? 1 : 3;
        for (int e = 0; e < epochs; e++) Epoch(array, stepped);
        return live * epochs / watch.Elapsed.TotalSeconds;
    }

    private static void Epoch(FusedTrainable array, List<FusedLane> lanes) => FusionThroughputBenchmark.Epoch(array, lanes);

    private static TrainableContext Context(string id, long seed) => FusionThroughputBenchmark.Context(id, seed);

    private static DeviceSlot Slot() => FusionThroughputBenchmark.Slot();
}
