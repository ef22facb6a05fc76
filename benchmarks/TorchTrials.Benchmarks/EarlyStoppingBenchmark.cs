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
/// Time for a sweep to reach a validation accuracy: ASHA (Ray's stopping variant) vs FIFO, same space and samples.
/// Three declared variants, each its own verdict: on Fashion-MNIST, <see cref="Space.Fashion"/> (the wide space), and on digits <see cref="Space.Narrow"/> (learning rate within the range Ray's examples use,
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

        /// <summary>The wide space on Fashion-MNIST (<c>mlp_fashion</c> on a <see cref="FashionTrainSize"/>-image subsample).</summary>
        Fashion,
    }

    public string Name => space switch
    {
        Space.Narrow => "early-stopping",
        Space.Wide => "early-stopping-wide",
        _ => "early-stopping-fashion",
    };

    public string Title => space switch
    {
        Space.Narrow => "Early stopping pays (digits, time to target accuracy, lr 1e-4..1e-1)",
        Space.Wide => "Early stopping pays (digits, time to target accuracy, wide space: lr 1e-5..1, momentum, 3 optimizers)",
        _ => "Early stopping pays (Fashion-MNIST, time to target accuracy, wide space)",
    };

    /// <summary>
    /// Images the Fashion-MNIST trials train on, and validation rows (1/30 of the 60,000: 2,000). Chosen from a 30-sample FIFO
    /// pilot of a similar space (width 32-128, depth 1-2): 4 of 30 samples reached 0.79 within 27 epochs, at epochs 7 to 14; the rest
    /// plateau lower or never learn.
    /// </summary>
    private const int FashionTrainSize = 1000;

    private const double FashionValidationFraction = 1.0 / 30;

    private const double FashionTarget = 0.79;

    private const int FashionSamples = 32, FashionMaxT = 27, FashionSeeds = 14;

    private static double TargetAccuracy => double.TryParse(Environment.GetEnvironmentVariable("TORCHTRIALS_BENCH_TARGET"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var t) ? t : 0.97;

    public BenchOutcome Run(BenchOptions options)
    {
        if (space == Space.Fashion) return RunFashion(options);
        double target = options.Quick ? 0.9 : TargetAccuracy;
        int samples = options.Quick ? 8 : 48, maxT = options.Quick ? 6 : 30;
        int seeds = options.Quick ? 1 : Math.Max(20, options.Repeats);
        var pairs = RunPairs(options, seeds, samples, maxT, target);
        var fifo = pairs.Select(p => p.Fifo.Seconds).ToList();
        var asha = pairs.Select(p => p.Asha.Seconds).ToList();
        double ratio = Stats.Median(fifo) / Stats.Median(asha);
        var perSeed = fifo.Zip(asha, (f, a) => f / a).ToList();
        var fullFifo = new List<double> { Stats.Time(() => TimeToTarget(options, space, 100, samples, maxT, 2.0, useAsha: false)) };
        var fullAsha = new List<double> { Stats.Time(() => TimeToTarget(options, space, 100, samples, maxT, 2.0, useAsha: true)) };
        var measurements = Measurements(pairs, samples, maxT, target, "per-seed speed-up, FIFO time / ASHA time", perSeed);
        measurements.Add(new Measurement("whole sweep, FIFO (seed 100)", "s", fullFifo));
        measurements.Add(new Measurement("whole sweep, ASHA (seed 100)", "s", fullAsha));
        return new BenchOutcome(Name, Title, "ASHA at least 3x faster", measurements,
            "FIFO time / ASHA time", ratio, ratio >= 3,
            (space == Space.Narrow
                ? "Both sweep the digits MLP over lr (log 1e-4..1e-1), width, depth, dropout, batch size and optimizer (adam, sgd with momentum 0.9)"
                : "Both sweep the digits MLP over lr (log 1e-5..1), momentum (0..0.99), optimizer (adam, sgd, rmsprop), width, depth, dropout and batch size") +
            ", drawing the same samples for the same seed, two trials at a time on the two cores, in alternating order seed by seed; " +
            "the clock stops at the first result at or above the target (or at the end of the sweep when none reaches it). " +
            "ASHA can only save the epochs FIFO spends on trials that never reach the target before a better one does; where one of the first " +
            "few samples already reaches it within a few epochs (see trials started until the target), the two take about the same time, and " +
            "ASHA is slower on seeds where it stops, at an early rung, the slow starter that FIFO lets reach the target. " + Notes(pairs) + ".");
    }

    /// <summary>
    /// The Fashion-MNIST verdict is statistical: per seed the speed-up r = FIFO time / ASHA time, and a one-sided Wilcoxon
    /// signed-rank test of log r - log 3 > 0 over the seeds (<see cref="Stats.WilcoxonGreater"/>); the goal is met at p &lt; 0.05.
    /// A side that never reaches the target counts as infinitely slow (r = 0 or r = infinity); a seed where neither does is dropped.
    /// </summary>
    private BenchOutcome RunFashion(BenchOptions options)
    {
        if (Trainables.Data.FashionMnistDataset.MissingMessage() is { } missing)
            return new BenchOutcome(Name, Title, "ASHA at least 3x faster (Wilcoxon p < 0.05)", Array.Empty<Measurement>(),
                "median FIFO time / ASHA time", null, null, "not run: " + missing);
        double target = options.Quick ? 0.75 : FashionTarget;
        int samples = options.Quick ? 6 : FashionSamples, maxT = options.Quick ? 3 : FashionMaxT, seeds = options.Quick ? 1 : FashionSeeds;
        // Read and split the data before any clock runs: the first sweep would otherwise pay for it.
        Trainables.Data.FashionMnistDataset.DeviceSplit(TorchSharp.torch.CPU, FashionValidationFraction, 0);
        var clock = Stopwatch.StartNew();
        var pairs = RunPairs(options, seeds, samples, maxT, target);
        var perSeed = pairs.Select(p => (p.Fifo.Reached, p.Asha.Reached) switch
        {
            (true, true) => p.Fifo.Seconds / p.Asha.Seconds,
            (false, true) => double.PositiveInfinity,
            (true, false) => 0,
            _ => double.NaN,
        }).Where(r => !double.IsNaN(r)).ToList();
        int neither = pairs.Count - perSeed.Count;
        var (wPlus, p, n) = Stats.WilcoxonGreater(perSeed.Select(r => Math.Log(r) - Math.Log(3)));
        // The same test on epochs trained until the target, which the machine's load does not move (seeds where both reached it).
        var both = pairs.Where(x => x.Fifo.Reached && x.Asha.Reached).ToList();
        var (epochW, epochP, epochN) = Stats.WilcoxonGreater(both.Select(x => Math.Log((double)x.Fifo.EpochsTrained / x.Asha.EpochsTrained) - Math.Log(3)));
        var measurements = Measurements(pairs, samples, maxT, target, "per-seed speed-up, FIFO time / ASHA time (seeds where one side reached the target)",
            perSeed.Count > 0 ? perSeed : new List<double> { double.NaN });
        return new BenchOutcome(Name, Title, "ASHA at least 3x faster (Wilcoxon p < 0.05)", measurements,
            "median per-seed FIFO time / ASHA time", Stats.Median(perSeed), n > 0 && p < 0.05,
            $"Both sweep mlp_fashion trained on {FashionTrainSize} of the 60,000 training images (train_size) and validated on " +
            $"{Math.Round(60_000 * FashionValidationFraction)} others, over lr (log 1e-5..1), momentum (0..0.99), optimizer (adam, sgd, rmsprop), width, " +
            "depth, dropout and batch size, drawing the same samples for the same seed, two trials at a time, in alternating order seed " +
            "by seed; the clock stops at the first result at or above the target. Verdict: one-sided Wilcoxon signed-rank test " +
            $"(exact) of log(FIFO time / ASHA time) - log 3 > 0 over {n} seeds" +
            (neither > 0 ? $" ({neither} seed(s) where neither side reached the target dropped)" : "") +
            FormattableString.Invariant($": W+ = {wPlus:0.#}, p = {p:0.####}; the same test on epochs trained until the target ({epochN} seeds where both reached it): ") +
            FormattableString.Invariant($"W+ = {epochW:0.#}, p = {epochP:0.####}; {clock.Elapsed.TotalMinutes:0.0} min in all. ") + Notes(pairs) + ".");
    }

    private sealed record SweepRun(double Seconds, bool Reached, int TrialsStarted, int EpochsTrained);

    /// <summary>FIFO and ASHA on the same samples for seeds 100, 101, ...; the order alternates seed by seed, so neither side always runs first (warm-up, cache state).</summary>
    private List<(SweepRun Fifo, SweepRun Asha)> RunPairs(BenchOptions options, int seeds, int samples, int maxT, double target)
    {
        var pairs = new List<(SweepRun Fifo, SweepRun Asha)>();
        for (int r = 0; r < seeds; r++)
        {
            long seed = 100 + r;
            var first = TimeToTarget(options, space, seed, samples, maxT, target, useAsha: r % 2 == 1);
            var second = TimeToTarget(options, space, seed, samples, maxT, target, useAsha: r % 2 == 0);
            pairs.Add(r % 2 == 0 ? (first, second) : (second, first));
        }
        return pairs;
    }

    private static List<Measurement> Measurements(List<(SweepRun Fifo, SweepRun Asha)> pairs, int samples, int maxT, double target, string perSeedName, List<double> perSeed) =>
        new()
        {
            new Measurement($"FIFO, random search, {samples} samples, up to {maxT} epochs each: time until a trial reports val_accuracy >= {target}, {pairs.Count} seeds", "s", pairs.Select(p => p.Fifo.Seconds).ToList()),
            new Measurement("ASHA (grace 1, reduction factor 3, max_t as above), same samples and seeds", "s", pairs.Select(p => p.Asha.Seconds).ToList()),
            new Measurement(perSeedName, "x", perSeed),
            new Measurement("trials started until the target, FIFO", "trials", pairs.Select(p => (double)p.Fifo.TrialsStarted).ToList()),
            new Measurement("trials started until the target, ASHA", "trials", pairs.Select(p => (double)p.Asha.TrialsStarted).ToList()),
            new Measurement("epochs trained (all trials) until the target, FIFO", "epochs", pairs.Select(p => (double)p.Fifo.EpochsTrained).ToList()),
            new Measurement("epochs trained (all trials) until the target, ASHA", "epochs", pairs.Select(p => (double)p.Asha.EpochsTrained).ToList()),
        };

    private static string Notes(List<(SweepRun Fifo, SweepRun Asha)> pairs) =>
        string.Join("; ", pairs.Select((p, r) =>
            $"seed {100 + r}: FIFO {p.Fifo.Seconds:0.0} s{(p.Fifo.Reached ? "" : " (not reached)")}, ASHA {p.Asha.Seconds:0.0} s{(p.Asha.Reached ? "" : " (not reached)")}"));

    private static SearchSpace SpaceOf(Space space)
    {
        var common = new SearchSpace
        {
            { "width", Domain.Choice(16, 32, 64, 128, 256) },
            { "depth", Domain.Choice(1, 2, 3) },
            { "dropout", Domain.Uniform(0, 0.5) },
            { "batch_size", Domain.Choice(16, 32, 64, 128, 256) },
        };
        if (space == Space.Fashion)
        {
            common.Add("train_size", FashionTrainSize);
            common.Add("validation_fraction", FashionValidationFraction);
        }
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

    private static SweepRun TimeToTarget(BenchOptions options, Space which, long seed, int samples, int maxT, double target, bool useAsha)
    {
        var space = SpaceOf(which);
        using var cancel = new CancellationTokenSource();
        var watch = new TargetWatch(target, cancel);
        ITrialScheduler scheduler = useAsha
            ? new AshaScheduler(new AshaOptions { MaxT = maxT, GracePeriod = 1, ReductionFactor = 3, Seed = (int)seed })
            : new FifoScheduler();
        var tuner = new Tuner(which == Space.Fashion ? "mlp_fashion" : "mlp_digits", space,
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
        return watch.ReachedAt is { } at ? new(at, true, watch.TrialsStarted, watch.EpochsTrained) : new(clock.Elapsed.TotalSeconds, false, watch.TrialsStarted, watch.EpochsTrained);
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
