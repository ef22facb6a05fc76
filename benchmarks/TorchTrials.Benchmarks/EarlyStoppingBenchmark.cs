using System.Diagnostics;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Benchmarks;

/// <summary>
/// Time for a digits sweep to reach a validation accuracy: ASHA (Ray's stopping variant) vs FIFO, same space and samples.
/// Two declared spaces, each its own verdict: <see cref="Space.Narrow"/> (learning rate within the range Ray's examples use,
/// where almost every sample trains well) and <see cref="Space.Wide"/> (learning rate and momentum over the range a user sweeps
/// when they do not yet know the model, so a share of the samples never learns).
/// </summary>
public sealed class EarlyStoppingBenchmark(EarlyStoppingBenchmark.Space space = EarlyStoppingBenchmark.Space.Narrow) : IBenchmark
{
    public enum Space
    {
        /// <summary>lr log-uniform 1e-4..1e-1, optimizer adam or sgd (momentum 0.9).</summary>
        Narrow,

        /// <summary>lr log-uniform 1e-5..1, momentum uniform 0..0.99, optimizer adam, sgd or rmsprop.</summary>
        Wide,
    }

    public string Name => space == Space.Narrow ? "early-stopping" : "early-stopping-wide";

    public string Title => space == Space.Narrow
        ? "Early stopping pays (digits, time to target accuracy, lr 1e-4..1e-1)"
        : "Early stopping pays (digits, time to target accuracy, wide space: lr 1e-5..1, momentum, 3 optimizers)";

    private static double TargetAccuracy => double.TryParse(Environment.GetEnvironmentVariable("TORCHTRIALS_BENCH_TARGET"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var t) ? t : 0.97;

    public BenchOutcome Run(BenchOptions options)
    {
        double target = options.Quick ? 0.9 : TargetAccuracy;
        int samples = options.Quick ? 8 : 48, maxT = options.Quick ? 6 : 30;
        var asha = new List<double>();
        var fifo = new List<double>();
        var fifoTrials = new List<double>();
        var ashaTrials = new List<double>();
        var fifoEpochs = new List<double>();
        var ashaEpochs = new List<double>();
        var notes = new List<string>();
        int seeds = options.Quick ? 1 : Math.Max(20, options.Repeats);
        for (int r = 0; r < seeds; r++)
        {
            long seed = 100 + r;
            // The order alternates seed by seed, so neither side always runs first (warm-up, cache state).
            var first = TimeToTarget(options, space, seed, samples, maxT, target, useAsha: r % 2 == 1);
            var second = TimeToTarget(options, space, seed, samples, maxT, target, useAsha: r % 2 == 0);
            var (fifoSeconds, fifoReached, fifoStarted, fifoTrained) = r % 2 == 0 ? first : second;
            var (ashaSeconds, ashaReached, ashaStarted, ashaTrained) = r % 2 == 0 ? second : first;
            fifoTrials.Add(fifoStarted);
            ashaTrials.Add(ashaStarted);
            fifoEpochs.Add(fifoTrained);
            ashaEpochs.Add(ashaTrained);
            fifo.Add(fifoSeconds);
            asha.Add(ashaSeconds);
            notes.Add($"seed {seed}: FIFO {fifoSeconds:0.0} s{(fifoReached ? "" : " (not reached)")}, ASHA {ashaSeconds:0.0} s{(ashaReached ? "" : " (not reached)")}");
        }
        double ratio = Stats.Median(fifo) / Stats.Median(asha);
        var perSeed = fifo.Zip(asha, (f, a) => f / a).ToList();
        var fullFifo = new List<double> { Stats.Time(() => TimeToTarget(options, space, 100, samples, maxT, 2.0, useAsha: false)) };
        var fullAsha = new List<double> { Stats.Time(() => TimeToTarget(options, space, 100, samples, maxT, 2.0, useAsha: true)) };
        return new BenchOutcome(Name, Title, "ASHA at least 3x faster", new[]
            {
                new Measurement($"FIFO, random search, {samples} samples, up to {maxT} epochs each: time until a trial reports val_accuracy >= {target}, {seeds} seeds", "s", fifo),
                new Measurement("ASHA (grace 1, reduction factor 3, max_t as above), same samples and seeds", "s", asha),
                new Measurement("per-seed speed-up, FIFO time / ASHA time", "x", perSeed),
                new Measurement("trials started until the target, FIFO", "trials", fifoTrials),
                new Measurement("trials started until the target, ASHA", "trials", ashaTrials),
                new Measurement("epochs trained (all trials) until the target, FIFO", "epochs", fifoEpochs),
                new Measurement("epochs trained (all trials) until the target, ASHA", "epochs", ashaEpochs),
                new Measurement("whole sweep, FIFO (seed 100)", "s", fullFifo),
                new Measurement("whole sweep, ASHA (seed 100)", "s", fullAsha),
            },
            "FIFO time / ASHA time", ratio, ratio >= 3,
            (space == Space.Narrow
                ? "Both sweep the digits MLP over lr (log 1e-4..1e-1), width, depth, dropout, batch size and optimizer (adam, sgd with momentum 0.9)"
                : "Both sweep the digits MLP over lr (log 1e-5..1), momentum (0..0.99), optimizer (adam, sgd, rmsprop), width, depth, dropout and batch size") +
            ", drawing the same samples for the same seed, two trials at a time on the two cores, in alternating order seed by seed; " +
            "the clock stops at the first result at or above the target (or at the end of the sweep when none reaches it). " +
            "ASHA can only save the epochs FIFO spends on trials that never reach the target before a better one does; where one of the first " +
            "few samples already reaches it within a few epochs (see trials started until the target), the two take about the same time, and " +
            "ASHA is slower on seeds where it stops, at an early rung, the slow starter that FIFO lets reach the target. " + string.Join("; ", notes) + ".");
    }

    private static SearchSpace SpaceOf(Space space)
    {
        var common = new SearchSpace
        {
            { "width", Domain.Choice(16, 32, 64, 128, 256) },
            { "depth", Domain.Choice(1, 2, 3) },
            { "dropout", Domain.Uniform(0, 0.5) },
            { "batch_size", Domain.Choice(16, 32, 64, 128, 256) },
        };
        if (space == Space.Narrow)
        {
            common.Add("lr", Domain.LogUniform(1e-4, 1e-1));
            common.Add("optimizer", Domain.Choice("adam", "sgd"));
        }
        else
        {
            common.Add("lr", Domain.LogUniform(1e-5, 1.0));
            common.Add("momentum", Domain.Uniform(0, 0.99));
            common.Add("optimizer", Domain.Choice("adam", "sgd", "rmsprop"));
        }
        return common;
    }

    private static (double Seconds, bool Reached, int TrialsStarted, int EpochsTrained) TimeToTarget(BenchOptions options, Space which, long seed, int samples, int maxT, double target, bool useAsha)
    {
        var space = SpaceOf(which);
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
                Quiet = true,
                Name = $"{(useAsha ? "asha" : "fifo")}-{seed}-{Guid.NewGuid().ToString("N")[..6]}",
                Stop = Stop.AfterIterations(maxT),
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(Environment.ProcessorCount),
                Loggers = TrialFileOptions.None,
                Callbacks = new[] { watch },
            });
        var clock = Stopwatch.StartNew();
        tuner.Fit(cancel.Token);
        return watch.ReachedAt is { } at ? (at, true, watch.TrialsStarted, watch.EpochsTrained) : (clock.Elapsed.TotalSeconds, false, watch.TrialsStarted, watch.EpochsTrained);
    }

    private sealed class TargetWatch(double target, CancellationTokenSource cancel) : ITrialCallback
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public double? ReachedAt { get; private set; }

        public int TrialsStarted { get; private set; }

        public int EpochsTrained { get; private set; }

        public void OnTrialStart(int iteration, IReadOnlyList<Trial> trials, Trial trial)
        {
            if (ReachedAt is null) TrialsStarted++;
        }

        public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result)
        {
            if (ReachedAt is not null) return;
            EpochsTrained++;
            if (!result.TryGetDouble("val_accuracy", out var accuracy) || accuracy < target) return;
            ReachedAt = _clock.Elapsed.TotalSeconds;
            cancel.Cancel();
        }
    }
}
