using System.Diagnostics;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Benchmarks;

/// <summary>Time for a digits sweep to reach a validation accuracy: ASHA (Ray's stopping variant) vs FIFO, same space and samples.</summary>
public sealed class EarlyStoppingBenchmark : IBenchmark
{
    public string Name => "early-stopping";

    public string Title => "Early stopping pays (digits, time to target accuracy)";

    private static double TargetAccuracy => double.TryParse(Environment.GetEnvironmentVariable("TORCHTRIALS_BENCH_TARGET"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var t) ? t : 0.97;

    public BenchOutcome Run(BenchOptions options)
    {
        double target = options.Quick ? 0.9 : TargetAccuracy;
        int samples = options.Quick ? 8 : 48, maxT = options.Quick ? 6 : 30;
        var asha = new List<double>();
        var fifo = new List<double>();
        var notes = new List<string>();
        int seeds = options.Quick ? 1 : Math.Max(10, options.Repeats);
        for (int r = 0; r < seeds; r++)
        {
            long seed = 100 + r;
            var (fifoSeconds, fifoReached) = TimeToTarget(options, seed, samples, maxT, target, useAsha: false);
            var (ashaSeconds, ashaReached) = TimeToTarget(options, seed, samples, maxT, target, useAsha: true);
            fifo.Add(fifoSeconds);
            asha.Add(ashaSeconds);
            notes.Add($"seed {seed}: FIFO {fifoSeconds:0.0} s{(fifoReached ? "" : " (not reached)")}, ASHA {ashaSeconds:0.0} s{(ashaReached ? "" : " (not reached)")}");
        }
        double ratio = Stats.Median(fifo) / Stats.Median(asha);
        var perSeed = fifo.Zip(asha, (f, a) => f / a).ToList();
        var fullFifo = new List<double> { Stats.Time(() => TimeToTarget(options, 100, samples, maxT, 2.0, useAsha: false)) };
        var fullAsha = new List<double> { Stats.Time(() => TimeToTarget(options, 100, samples, maxT, 2.0, useAsha: true)) };
        return new BenchOutcome(Name, Title, "ASHA at least 3x faster", new[]
            {
                new Measurement($"FIFO, random search, {samples} samples, up to {maxT} epochs each: time until a trial reports val_accuracy >= {target}, {seeds} seeds", "s", fifo),
                new Measurement("ASHA (grace 1, reduction factor 3, max_t as above), same samples and seeds", "s", asha),
                new Measurement("per-seed speed-up, FIFO time / ASHA time", "x", perSeed),
                new Measurement("whole sweep, FIFO (seed 100)", "s", fullFifo),
                new Measurement("whole sweep, ASHA (seed 100)", "s", fullAsha),
            },
            "FIFO time / ASHA time", ratio, ratio >= 3,
            "Both sweep the digits MLP over lr (log 1e-4..1e-1), width, depth, dropout, batch size and optimizer, drawing the same samples for the same seed, two trials at a time on the two cores; " +
            "the clock stops at the first result at or above the target (or at the end of the sweep when none reaches it). " + string.Join("; ", notes) + ".");
    }

    private static (double Seconds, bool Reached) TimeToTarget(BenchOptions options, long seed, int samples, int maxT, double target, bool useAsha)
    {
        var space = new SearchSpace
        {
            { "lr", Domain.LogUniform(1e-4, 1e-1) },
            { "width", Domain.Choice(16, 32, 64, 128, 256) },
            { "depth", Domain.Choice(1, 2, 3) },
            { "dropout", Domain.Uniform(0, 0.5) },
            { "batch_size", Domain.Choice(16, 32, 64, 128, 256) },
            { "optimizer", Domain.Choice("adam", "sgd") },
        };
        using var cancel = new CancellationTokenSource();
        var watch = new TargetWatch(target, cancel);
        ITrialScheduler scheduler = useAsha
            ? new AshaScheduler(new AshaOptions { MaxT = maxT, GracePeriod = 1, ReductionFactor = 3, Seed = (int)seed })
            : new FifoScheduler();
        var tuner = new Tuner("mlp_digits", space,
            new TuneConfig { Metric = "val_accuracy", Mode = MetricMode.Max, Scheduler = scheduler, NumSamples = samples, Seed = seed },
            new RunConfig
            {
                StoragePath = options.WorkDirectory,
                Name = $"{(useAsha ? "asha" : "fifo")}-{seed}-{Guid.NewGuid().ToString("N")[..6]}",
                Stop = new Dictionary<string, double> { [TrialResult.TrainingIterationKey] = maxT },
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(Environment.ProcessorCount),
                Loggers = TrialFileOptions.None,
                Callbacks = new[] { watch },
            });
        var clock = Stopwatch.StartNew();
        tuner.Fit(cancel.Token);
        return watch.ReachedAt is { } at ? (at, true) : (clock.Elapsed.TotalSeconds, false);
    }

    private sealed class TargetWatch(double target, CancellationTokenSource cancel) : ITrialCallback
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public double? ReachedAt { get; private set; }

        public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result)
        {
            if (ReachedAt is not null || !result.TryGetDouble("val_accuracy", out var accuracy) || accuracy < target) return;
            ReachedAt = _clock.Elapsed.TotalSeconds;
            cancel.Cancel();
        }
    }
}
