using System.Globalization;
using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Cli.Rendering;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Cli.Rendering;

/// <summary>What a person sees of a finished or running experiment: the final results view and `torchtrials status`.</summary>
public class ResultsViewTests
{
    /// <summary>score rises to its peak at iteration 2 and then falls: the last result is not the best.</summary>
    private static IEnumerable<Metrics> Peak(TrialConfig config, FunctionContext context)
    {
        double top = config.GetDouble("q");
        foreach (var f in new[] { 0.5, 1.0, 0.6, 0.4 }) yield return new Metrics { { "score", top * f } };
        while (true) yield return new Metrics { { "score", top * 0.4 } };
    }

    private static TrainableRegistry Registry() =>
        TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.SaturatingCurve).RegisterFunction("peak", Peak);

    /// <summary>The sweep of the ASHA scheduler tests (q 1..8), written to a real store.</summary>
    private static IReadOnlyList<Trial> AshaSweep(string directory)
    {
        var asha = new AshaScheduler(new AshaOptions { Metric = "score", Mode = MetricMode.Max, MaxT = 16, GracePeriod = 1, ReductionFactor = 2 });
        var trials = new[] { 3, 7, 1, 8, 5, 2, 6, 4 }
            .Select(q => new Trial("curve", TrialConfig.From(("q", (double)q), ("lr", 0.001 * q), ("width", 64), ("depth", 2), ("dropout", 0.05 * q), ("batch_size", 32)),
                trialId: $"0a1b2c3d_{q:D5}", stop: Stop.AfterIterations(16)))
            .ToArray();
        using var h = new Harness(cpus: 8, registry: Registry(), scheduler: asha, directory: directory, sqlite: true);
        h.Add(trials);
        h.RunToEnd();
        h.Controller.Checkpoint(force: true);
        return trials;
    }

    private static (int Code, IReadOnlyList<string> Lines) Status(string directory, int width)
    {
        var console = new TestConsole().Width(width);
        int code = CliApp.Run(new[] { "status", directory }, console, plain: true);
        return (code, console.Lines);
    }

    [Theory]
    [InlineData(80)]
    [InlineData(160)]
    public void Status_shows_trials_stopped_by_ASHA_as_stopped_and_every_line_fits_the_terminal(int width)
    {
        using var dir = new TempDir();
        var trials = AshaSweep(dir.Path);
        int stopped = trials.Count(t => t.StoppedBy is not null);
        Assert.InRange(stopped, 1, 7);

        var (code, lines) = Status(dir.Path, width);

        Assert.Equal(ExitCodes.Success, code);
        Assert.All(lines, l => Assert.True(l.Length <= width, $"{l.Length} columns: \"{l}\""));
        Assert.Contains($"8 trials: {8 - stopped} terminated, {stopped} stopped by ASHA", lines);
        foreach (var trial in trials)
        {
            var row = Assert.Single(lines, l => l.StartsWith(trial.Id + " ", StringComparison.Ordinal));
            var word = trial.StoppedBy is null ? "TERMINATED" : width >= 160 ? "STOPPED by ASHA" : "STOPPED";
            Assert.Contains($" {word} ", row);
        }
    }

    [Fact]
    public void The_best_trial_is_the_best_result_so_far_not_the_best_last_result()
    {
        using var dir = new TempDir();
        // a peaks at 0.9 and ends at 0.36; b climbs to 0.8 * (1 - e^-1.5) = 0.62: the best so far is a's, the best last result b's.
        var a = new Trial("peak", TrialConfig.From(("q", 0.9)), trialId: "a", stop: Stop.AfterIterations(4));
        var b = new Trial("curve", TrialConfig.From(("q", 0.8)), trialId: "b", stop: Stop.AfterIterations(6));
        var snapshots = new List<ExperimentSnapshot>();
        using var h = new Harness(cpus: 1, registry: Registry(), directory: dir.Path);
        var publisher = new SnapshotPublisher("peaks", h.Allocator, "score", MetricMode.Max, TimeSpan.Zero, snapshots.Add);
        h.Add(a, b);
        while (!h.Controller.IsFinished)
        {
            h.Controller.Step();
            snapshots.Add(publisher.Build(h.Trials, finished: false));
        }

        var final = publisher.Build(h.Trials, finished: true);
        Assert.Equal("a", final.Best!.TrialId);
        Assert.Equal(0.9, final.Best.BestMetric!.Value, 12);
        var bests = snapshots.Where(s => s.Best is not null).Select(s => s.Best!.BestMetric!.Value).ToList();
        Assert.Equal(bests.OrderBy(v => v), bests);
        Assert.Contains("best score=0.9000 (a)", ProgressView.Line(final));

        var console = new TestConsole().Width(120);
        ResultsView.WriteBest(console, new ResultGrid(h.Trials.Select(TrialSummary.Of), dir.Path, "score", MetricMode.Max));
        Assert.StartsWith($"Best trial: a score=0.9000, last {(0.9 * 0.4).ToString("0.0000", CultureInfo.InvariantCulture)}", console.Lines[0]);
    }

    [Fact]
    public void A_run_whose_trials_all_errored_has_no_best_trial_even_when_they_reported_the_metric()
    {
        // Given two trials that each reported a score and then errored
        var trials = new[] { "a", "b" }.Select(id => new TrialSummary
        {
            TrialId = id,
            TrainableName = "peak",
            Status = TrialStatus.Error,
            Config = TrialConfig.Empty,
            Metrics = new Dictionary<string, MetricSummary> { ["score"] = new MetricSummary(1.0, 1.0, 1.0, 1.0, 1) },
            Error = "boom",
        });
        var console = new TestConsole();

        // When the CLI writes the best trial
        ResultsView.WriteBest(console, new ResultGrid(trials, "/tmp/exp", "score", MetricMode.Max));

        // Then it says there is none because every trial errored
        Assert.Equal("No best trial: all 2 trials errored.", console.Output.Trim());
    }

    [Fact]
    public void A_snapshot_lists_the_searched_hyperparameters_in_the_order_of_the_spec()
    {
        var keys = new[] { "lr", "width", "depth", "dropout", "batch_size" };
        var config = TrialConfig.From(("lr", 0.001), ("width", 64), ("depth", 2), ("dropout", 0.1), ("batch_size", 32), ("epochs", 3));
        var trial = new Trial("curve", config, trialId: "a", evaluatedParams: keys.ToDictionary(k => k, k => config[k]));
        var allocator = new TorchTrials.Gpu.DeviceSlotAllocator(TorchTrials.Gpu.DeviceInventory.Simulated(1, 0, 16, null));

        var snapshot = new SnapshotPublisher("x", allocator, "score", MetricMode.Max, TimeSpan.Zero, _ => { }).Build(new[] { trial }, finished: false);

        Assert.Equal(keys, snapshot.Trials.Single().Params.Select(p => p.Key));
    }
}
