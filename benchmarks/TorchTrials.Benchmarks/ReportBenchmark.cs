using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchTrials.Runner;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;

namespace TorchTrials.Benchmarks;

/// <summary>
/// <c>torchtrials report DIR</c> on a 1000-trial experiment: the store is written through <see cref="SqliteExperimentStore"/>
/// as the controller writes it (trial states, status changes, results, ASHA's STOP decisions, the experiment state with the
/// search space's domains), then <see cref="SweepReport.Write(string)"/>, the command's own call, draws every picture and
/// index.html. The time is that call's wall time; where it goes is measured apart (loading, then each picture).
/// </summary>
public sealed class ReportBenchmark : IBenchmark
{
    public string Name => "report";

    public string Title => "Report of a 1000-trial sweep";

    public BenchOutcome Run(BenchOptions options)
    {
        int trials = options.Quick ? 200 : 1000;
        var dir = Path.Combine(options.WorkDirectory, "report-sweep");
        var built = ReportSweep.Build(dir, trials);

        // The first report of the process, as a fresh `torchtrials report` sees it: JIT, ScottPlot's fonts, SkiaSharp's native load.
        var cold = Stats.Time(() => SweepReport.Write(dir));
        var total = new List<double>();
        var load = new List<double>();
        var pictures = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        int pictureCount = 0;
        for (int r = 0; r < options.Repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            pictureCount = SweepReport.Write(dir).Pictures.Count;
            total.Add(clock.Elapsed.TotalSeconds);

            clock.Restart();
            var data = SweepData.Load(dir);
            load.Add(clock.Elapsed.TotalSeconds);
            foreach (var picture in SweepReport.Pictures(data))
            {
                clock.Restart();
                if (picture.Draw(data) is not { } plot) continue; // does not apply (lineage without PBT)
                ReportStyle.Png(plot);
                if (!pictures.TryGetValue(picture.FileName, out var list)) pictures[picture.FileName] = list = new List<double>();
                list.Add(clock.Elapsed.TotalSeconds);
            }
        }

        double median = Stats.Median(total);
        var measurements = new List<Measurement>
        {
            new($"SweepReport.Write (what `torchtrials report DIR` runs): {trials} trials, {built.Results} results, {built.Stops} ASHA stops -> {pictureCount} PNGs + index.html", "s", total),
            new("the first report of the process (cold: tier-0 JIT, fonts, native load), once", "s", new[] { cold }),
            new("of which, measured apart: SweepData.Load (one read snapshot of the store)", "s", load),
        };
        foreach (var (file, samples) in pictures.OrderByDescending(p => Stats.Median(p.Value)))
            measurements.Add(new($"of which: {file} drawn and encoded", "s", samples));
        return new BenchOutcome(Name, Title, "under 10 s for 1000 trials", measurements,
            "seconds per report", median, median < 10,
            $"The store is built as a sweep writes it: {trials} trials of lr (log-uniform 1e-5..1e-1), momentum, width and optimizer, " +
            "each reporting val_accuracy and loss every iteration until ASHA (grace 20, reduction 3, max_t 200, asynchronous rungs at 20, 60 and 180) " +
            "stops it or it reaches 200 iterations, on four simulated GPU slots. The repeats are warm; the cold first report is what a fresh CLI process pays.");
    }
}

/// <summary>A synthetic but store-faithful ASHA sweep, written through the store's own write path.</summary>
internal static class ReportSweep
{
    public const int MaxT = 200;
    public const int Grace = 20;
    public const int Reduction = 3;

    public static (long Results, int Stops) Build(string dir, int trials, int seed = 0)
    {
        var random = new Random(seed);
        var space = new SearchSpace
        {
            ["lr"] = Domain.LogUniform(1e-5, 1e-1),
            ["momentum"] = Domain.Uniform(0.5, 0.99),
            ["width"] = Domain.Choice(64L, 128L, 256L),
            ["optimizer"] = Domain.Choice("sgd", "adam"),
        };
        var rungs = new List<int>();
        for (int t = Grace; t < MaxT; t *= Reduction) rungs.Add(t);
        var recorded = rungs.ToDictionary(r => r, _ => new List<double>());
        long results = 0;
        int stops = 0;
        using var store = SqliteExperimentStore.Open(dir);
        store.SaveExperimentState(new JsonObject
        {
            ["name"] = Path.GetFileName(dir),
            ["metric"] = "val_accuracy",
            ["mode"] = "max",
            ["trial_sequence"] = trials,
            [ParamDomains.StateKey] = ParamDomains.ToJson(ParamDomains.From(space)),
        });
        long timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        for (int i = 0; i < trials; i++)
        {
            double lr = Math.Pow(10, -5 + 4 * random.NextDouble());
            double momentum = 0.5 + 0.49 * random.NextDouble();
            long width = new[] { 64L, 128L, 256L }[random.Next(3)];
            string optimizer = random.Next(2) == 0 ? "sgd" : "adam";
            var config = TrialConfig.From(("lr", lr), ("momentum", momentum), ("width", width), ("optimizer", optimizer));
            var trial = new Trial("mlp_digits", config, trialId: $"{i:x5}_{i:00000}", evaluatedParams: config.ToDictionary(kv => kv.Key, kv => kv.Value))
            {
                Slot = $"GPU{i % 4}",
            };
            trial.Sequence = i + 1;
            store.TrialAdded(trial);
            trial.Status = TrialStatus.Running;
            store.TrialChanged(trial, TrialStatus.Pending);

            // Best near lr 1e-2.5, adam a little better, wider a little better; noisy curves rising towards that.
            double quality = Math.Exp(-Math.Pow(Math.Log10(lr) + 2.5, 2) / 1.5) * (optimizer == "adam" ? 1 : 0.93) * (0.9 + width / 2560.0) * (0.8 + 0.2 * momentum);
            double speed = 0.02 + 0.1 * quality;
            double time = 0;
            bool stopped = false;
            for (int it = 1; it <= MaxT; it++)
            {
                double acc = 0.1 + 0.88 * quality * (1 - Math.Exp(-speed * it)) + 0.01 * (random.NextDouble() - 0.5);
                double step = 0.05 + 0.01 * random.NextDouble();
                time += step;
                var result = new TrialResult
                {
                    Metrics = [new("val_accuracy", (object)acc), new("loss", (object)(2.3 * (1 - acc) + 0.02 * random.NextDouble()))],
                    TrainingIteration = it,
                    TimeThisIterS = step,
                    TimeTotalS = time,
                    TimeSinceRestore = time,
                    IterationsSinceRestore = it,
                    TrialId = trial.Id,
                    Timestamp = timestamp + (long)time,
                    Hostname = "bench",
                    Pid = Environment.ProcessId,
                };
                trial.RecordResult(result);
                store.ResultReported(trial, result);
                results++;
                if (recorded.TryGetValue(it, out var rung))
                {
                    // Asynchronous ASHA: continue when in the top 1/reduction of what this rung has recorded so far.
                    rung.Add(acc);
                    var sorted = rung.OrderByDescending(v => v).ToList();
                    double cutoff = sorted[Math.Max(0, (int)Math.Ceiling(sorted.Count / (double)Reduction) - 1)];
                    if (acc < cutoff)
                    {
                        store.DecisionMade(trial, it, "STOP", "AshaScheduler");
                        trial.StoppedBy = "AshaScheduler";
                        stopped = true;
                        stops++;
                        break;
                    }
                }
            }
            trial.Status = TrialStatus.Terminated;
            store.TrialChanged(trial, TrialStatus.Running, stopped ? "stopped by AshaScheduler" : "completed");
            if (i % 50 == 49) store.BeginFlush();
        }
        store.Flush();
        return (results, stops);
    }
}
