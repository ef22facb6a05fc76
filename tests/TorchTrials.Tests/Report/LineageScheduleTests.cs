using TorchTrials.Runner;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Results;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Report;

/// <summary>Picture 7: the PBT lineage and the hyperparameters' schedules, from a real PBT sweep and from data built in memory.</summary>
public class LineageScheduleTests
{
    [Fact]
    public void A_pbt_sweep_report_draws_the_lineage_and_the_lr_schedule_and_the_index_shows_them()
    {
        using var temp = new TempDir();
        var grid = ReportSweeps.Pbt(temp.Path);

        var files = SweepReport.Write(grid.ExperimentPath);

        var names = files.Pictures.Select(Path.GetFileName).ToList();
        Assert.Contains("lineage.png", names);
        Assert.Contains("schedule_lr.png", names);
        // history (2), learning curves, parallel coordinates, the slice of lr, importance, timeline, lineage, the schedule of lr
        Assert.Equal(9, names.Count);
        Assert.Equal(new[] { "timeline.png", "lineage.png", "schedule_lr.png" }, names.TakeLast(3));
        foreach (var name in new[] { "lineage.png", "schedule_lr.png" })
            PictureChecks.AssertPicture(File.ReadAllBytes(Path.Combine(files.Folder, name)), ReportStyle.Width, ReportStyle.Height, name);
        var html = File.ReadAllText(files.Index);
        Assert.Contains("src=\"lineage.png\"", html);
        Assert.Contains("<h2>Schedule: lr</h2>\n<img src=\"schedule_lr.png\"", html);

        // one arrow per exploit, and the title names the scheduler
        var data = SweepData.Load(grid.ExperimentPath);
        var lineage = LineagePlot.Draw(data)!;
        Assert.Equal(data.Exploits.Count, lineage.GetPlottables().OfType<ScottPlot.Plottables.Arrow>().Count());
        Assert.StartsWith("PBT lineage", lineage.Axes.Title.Label.Text, StringComparison.Ordinal);

        // The toy reports the lr it trained with as cur_lr: the rebuilt schedule must give that value at every stored
        // iteration i (the step that began before i), so the exploit's iteration is where the recipient went on from.
        int exploited = 0;
        foreach (var trial in data.Trials)
        {
            var steps = SchedulePlot.Schedule(data, trial, "lr");
            Assert.Equal((double)trial.Params["lr"]!, (double)steps[^1].Value!);
            if (steps.Count > 1) exploited++;
            foreach (var result in trial.Results)
            {
                var step = steps.Last(s => s.FromIteration < result.TrainingIteration);
                Assert.True(result.TryGetDouble("cur_lr", out var trainedWith));
                Assert.Equal(trainedWith, (double)step.Value!, 12);
            }
        }
        Assert.True(exploited > 0, "no trial's schedule changed");

        var plots = ResultGrid.Open(grid.ExperimentPath).Plots;
        PictureChecks.AssertPicture(plots.Lineage().Png, ReportStyle.Width, ReportStyle.Height, "Lineage()");
        var schedule = Assert.Single(plots.Schedules());
        PictureChecks.AssertPicture(schedule.Png, ReportStyle.Width, ReportStyle.Height, "Schedules()");
        Assert.Equal(schedule.Png, plots.Schedule("lr").Png);
    }

    /// <summary>
    /// Trial a starts with lr 0.01, takes b's state at iteration 4 with lr 0.02 and c's at iteration 8 with lr 0.004 (its
    /// params hold that last value); b and c are never exploited. The exploits leave width as it was.
    /// </summary>
    private static SweepData ExploitedTwice()
    {
        static SweepTrial Trial(string id, int sequence, double lr, int iterations) => new(id, sequence, TrialStatus.Terminated,
            new Dictionary<string, object?> { ["lr"] = lr, ["width"] = 32L },
            Enumerable.Range(1, iterations).Select(i => new TrialResult { Metrics = [new("acc", (object)(i * 0.1))], TrainingIteration = i, TrialId = id }).ToList(),
            []);
        static SweepExploit Exploit(string donor, long iteration, double oldLr, double newLr) => new("a", donor, iteration, DateTimeOffset.UnixEpoch,
            new Dictionary<string, object?> { ["lr"] = oldLr, ["width"] = 32L }, new Dictionary<string, object?> { ["lr"] = newLr, ["width"] = 32L });
        return new SweepData
        {
            Metric = "acc",
            Mode = MetricMode.Max,
            Trials = [Trial("a", 0, 0.004, 12), Trial("b", 1, 0.003, 12), Trial("c", 2, 0.0005, 12)],
            Exploits = [Exploit("b", 4, 0.01, 0.02), Exploit("c", 8, 0.02, 0.004)],
            Domains =
            [
                new ParamDomain("lr", ParamKind.Float) { Low = 1e-4, High = 1e-1, Log = true },
                new ParamDomain("width", ParamKind.Categorical) { Categories = [16L, 32L, 64L] },
            ],
        };
    }

    [Fact]
    public void A_trial_exploited_twice_has_its_initial_value_then_each_new_value_from_its_exploits_iteration()
    {
        var data = ExploitedTwice();

        Assert.Equal(new[] { new ScheduleStep(0, 0.01), new ScheduleStep(4, 0.02), new ScheduleStep(8, 0.004) }, SchedulePlot.Schedule(data, data.Trials[0], "lr"));
        Assert.Equal(new[] { new ScheduleStep(0, 0.003) }, SchedulePlot.Schedule(data, data.Trials[1], "lr"));
        Assert.Equal(new[] { "lr" }, SchedulePlot.ChangedParams(data));
        Assert.Null(SchedulePlot.Draw(data, "width"));
        var pictures = SweepReport.Pictures(data).Select(p => p.FileName).ToList();
        Assert.Contains("schedule_lr.png", pictures);
        Assert.DoesNotContain("schedule_width.png", pictures);

        var schedule = SchedulePlot.Draw(data, "lr")!;
        Assert.Equal("Schedule: lr of 3 trials by iteration (PBT/PB2)", schedule.Axes.Title.Label.Text);
        Assert.Equal("lr (log scale)", schedule.Axes.Left.Label.Text);
        PictureChecks.AssertPicture(ReportStyle.Png(schedule), ReportStyle.Width, ReportStyle.Height, "schedule of lr");
        var lineage = LineagePlot.Draw(data)!;
        Assert.Equal(2, lineage.GetPlottables().OfType<ScottPlot.Plottables.Arrow>().Count());
        PictureChecks.AssertPicture(ReportStyle.Png(lineage), ReportStyle.Width, ReportStyle.Height, "lineage");
    }

    [Fact]
    public void An_exploit_to_an_earlier_iteration_drops_the_later_steps_its_rollback_undid_and_the_lineage_follows_the_donors()
    {
        // a took b's state at 8, then (a donor behind it) c's state at 6: its iterations 7 and 8 were rolled back.
        var data = ExploitedTwice() with
        {
            Exploits =
            [
                new("a", "b", 8, DateTimeOffset.UnixEpoch, new Dictionary<string, object?> { ["lr"] = 0.01 }, new Dictionary<string, object?> { ["lr"] = 0.02 }),
                new("a", "c", 6, DateTimeOffset.UnixEpoch, new Dictionary<string, object?> { ["lr"] = 0.02 }, new Dictionary<string, object?> { ["lr"] = 0.004 }),
                new("b", "a", 10, DateTimeOffset.UnixEpoch, new Dictionary<string, object?> { ["lr"] = 0.003 }, new Dictionary<string, object?> { ["lr"] = 0.005 }),
            ],
        };

        Assert.Equal(new[] { new ScheduleStep(0, 0.01), new ScheduleStep(6, 0.004) }, SchedulePlot.Schedule(data, data.Trials[0], "lr"));
        // a carries its own weights to 6, then c's (index 2); b carries its own to 10, then a's at 10, which are c's
        var ancestry = LineagePlot.Ancestry(data);
        Assert.Equal(new[] { (0L, 0), (6L, 2) }, ancestry["a"]);
        Assert.Equal(new[] { (0L, 1), (10L, 2) }, ancestry["b"]);
        Assert.Equal(new[] { (0L, 2) }, ancestry["c"]);
    }
}
