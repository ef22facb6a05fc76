using Microsoft.Data.Sqlite;
using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Runner;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Report;

/// <summary>The report of a real digits ASHA sweep: every picture is written, decodes, has the report's size and a drawing.</summary>
public class SweepReportTests(DigitsSweepFixture sweep) : IClassFixture<DigitsSweepFixture>
{
    [Fact]
    public void The_report_writes_every_picture_at_its_size_not_blank_and_an_index_naming_them()
    {
        var files = SweepReport.Write(sweep.Experiment);

        // history (2), learning curves, parallel coordinates, one slice per hyperparameter (5), importance, timeline
        Assert.Equal(6 + ReportSweeps.DigitsSpace.Count, files.Pictures.Count);
        Assert.Contains(files.Pictures, p => Path.GetFileName(p) == "parallel_coordinates.png");
        Assert.Contains(files.Pictures, p => Path.GetFileName(p) == "importance.png");
        Assert.Equal("timeline.png", Path.GetFileName(files.Pictures[^1]));
        foreach (var picture in files.Pictures)
        {
            Assert.True(File.Exists(picture), picture);
            PictureChecks.AssertPicture(File.ReadAllBytes(picture), ReportStyle.Width, ReportStyle.Height, Path.GetFileName(picture));
        }
        var html = File.ReadAllText(files.Index);
        Assert.All(files.Pictures, p => Assert.Contains($"src=\"{Path.GetFileName(p)}\"", html));
        Assert.Contains($"{ReportSweeps.DigitsTrials} trials", html);
        Assert.Contains($"Best trial: <b>{sweep.Grid.GetBestResult().TrialId}</b>", html);
        Assert.Equal(Path.Combine(Path.GetFullPath(sweep.Experiment), SweepReport.FolderName), files.Folder);
    }

    [Fact]
    public void A_sweep_without_pbt_has_no_lineage_or_schedule_pictures_and_the_library_says_why()
    {
        var files = SweepReport.Write(sweep.Experiment);

        var names = files.Pictures.Select(Path.GetFileName).ToList();
        Assert.DoesNotContain("lineage.png", names);
        Assert.DoesNotContain(names, n => n!.StartsWith("schedule_", StringComparison.Ordinal));
        Assert.DoesNotContain("lineage.png", File.ReadAllText(files.Index));
        var plots = ResultGrid.Open(sweep.Experiment).Plots;
        Assert.Contains("no PBT or PB2 exploit", Assert.Throws<InvalidOperationException>(() => plots.Lineage()).Message);
        Assert.Contains("no PBT or PB2 exploit changed 'lr'", Assert.Throws<InvalidOperationException>(() => plots.Schedule("lr")).Message);
        Assert.Empty(plots.Schedules());
    }

    [Fact]
    public void Load_reads_trials_results_decisions_running_spans_and_the_saved_domains()
    {
        var data = SweepData.Load(sweep.Experiment);

        Assert.Equal("val_accuracy", data.Metric);
        Assert.Equal(ReportSweeps.DigitsTrials, data.Trials.Count);
        Assert.All(data.Trials, t => Assert.Equal(sweep.Grid.HistoryOf(t.Id).Count, t.Results.Count));
        Assert.All(data.Trials, t => Assert.NotEmpty(t.Running));
        Assert.All(data.Trials, t => Assert.All(t.Running, r => Assert.True(r.End >= r.Start)));
        // ASHA stopped some trial at a rung, and the store holds that STOP decision at the trial's last iteration
        var stopped = data.Trials.Where(t => t.StoppedBy == nameof(AshaScheduler)).ToList();
        Assert.NotEmpty(stopped);
        Assert.All(stopped, t => Assert.Contains(data.Decisions, d => d.TrialId == t.Id && d.Decision == "STOP" && d.Iteration == t.Results[^1].TrainingIteration));
        // the domains are the search space's, as saved at run start
        Assert.Equal(new[] { "lr", "width", "depth", "dropout", "batch_size" }, data.Domains.Select(d => d.Name));
        var lr = data.Domains[0];
        Assert.True(lr is { Kind: ParamKind.Float, Log: true, Low: 3e-4, High: 3e-2 });
        Assert.Equal(new object?[] { 16L, 32L, 64L }, data.Domains[1].Categories);
        Assert.False(data.Domains[3].Log);
    }

    [Fact]
    public void The_timeline_shows_each_digits_trial_on_the_one_cpu_slot_it_ran_in_one_after_another()
    {
        var data = SweepData.Load(sweep.Experiment);

        // One CPU, one trial at a time: every trial recorded the CPU slot, and the slot's one row holds every running span.
        Assert.All(data.Trials, t => Assert.Equal("CPU", t.Slot));
        var layout = TimelinePlot.Layout(data)!;
        Assert.True(layout.SlotsRecorded);
        Assert.Equal(new[] { "CPU" }, layout.Rows.Select(r => r.Label));
        Assert.Equal(data.Trials.Sum(t => t.Running.Count), layout.Bars.Count);
        Assert.All(data.Trials, t => Assert.Contains(layout.Bars, b => b.Trial.Id == t.Id));
        var ordered = layout.Bars.OrderBy(b => b.Start).ToList();
        Assert.All(ordered.Zip(ordered.Skip(1)), p => Assert.True(p.First.End <= p.Second.Start + 1e-3, $"{p.First} overlaps {p.Second}"));
        Assert.Equal(0, ordered[0].Start);

        // ASHA stopped some early and the rest ran to the end: both are in the legend.
        var legend = TimelinePlot.Draw(data)!.Legend.ManualItems.Select(i => i.LabelText).ToList();
        Assert.Contains(legend, l => l.StartsWith("terminated: ", StringComparison.Ordinal));
        Assert.Contains(legend, l => l.StartsWith("stopped early: ", StringComparison.Ordinal));
        PictureChecks.AssertPicture(ResultGrid.Open(sweep.Experiment).Plots.Timeline().Png, ReportStyle.Width, ReportStyle.Height, "Timeline()");
    }

    [Fact]
    public void Text_renders_a_titled_plot_differs_from_an_untitled_one_in_the_title_band()
    {
        // Both titled, so the layout is the same: a long title inks its band, a one-character one hardly does.
        var titled = ReportStyle.NewPlot("A title of some length, for the band", "x", "y");
        var untitled = ReportStyle.NewPlot(".", "x", "y");
        foreach (var plot in new[] { titled, untitled }) plot.Add.Scatter(new double[] { 0, 1 }, new double[] { 0, 1 });
        using var a = PictureChecks.Decode(ReportStyle.Png(titled));
        using var b = PictureChecks.Decode(ReportStyle.Png(untitled));
        var (_, titleInk) = PictureChecks.Ink(a, 0, 40);
        var (_, noTitleInk) = PictureChecks.Ink(b, 0, 40);
        Assert.True(titleInk > 0.01, $"title band {titleInk:P2} inked");
        Assert.True(noTitleInk < titleInk / 5, $"untitled band {noTitleInk:P2} vs titled {titleInk:P2}");
    }

    [Fact]
    public void The_library_draws_the_same_pictures_as_png_bytes_that_save_and_show_inline_as_html()
    {
        var grid = ResultGrid.Open(sweep.Experiment);
        var history = grid.Plots.History();
        PictureChecks.AssertPicture(history.Png, ReportStyle.Width, ReportStyle.Height, "History()");
        PictureChecks.AssertPicture(grid.Plots.LearningCurves().Png, ReportStyle.Width, ReportStyle.Height, "LearningCurves()");
        PictureChecks.AssertPicture(grid.Plots.Slice("lr").Png, ReportStyle.Width, ReportStyle.Height, "Slice(lr)");
        using var temp = new TempDir();
        var saved = history.Save(Path.Combine(temp.Path, "sub", "h.png"));
        Assert.Equal(history.Png, File.ReadAllBytes(saved));

        var formatter = new ResultFormatterSource().CreateTypeFormatters().OfType<ResultFormatterSource.HtmlFormatter>().Single(f => f.Type == typeof(PlotImage));
        using var html = new StringWriter();
        Assert.True(formatter.Format(history, html));
        Assert.StartsWith("<img src=\"data:image/png;base64,", html.ToString());
        Assert.Contains(Convert.ToBase64String(history.Png), html.ToString());
    }

    [Fact]
    public void The_cli_report_command_writes_the_report_and_says_where_and_a_bad_folder_is_one_line_exit_2()
    {
        var console = new TestConsole();
        console.Profile.Width = 80;
        Assert.Equal(ExitCodes.Success, CliApp.Run(new[] { "report", sweep.Experiment }, console, plain: true));
        Assert.Contains($"Report: {6 + ReportSweeps.DigitsSpace.Count} pictures and index.html in ", console.Output);
        Assert.True(File.Exists(Path.Combine(sweep.Experiment, SweepReport.FolderName, "index.html")));

        var bad = new TestConsole();
        bad.Profile.Width = 80;
        Assert.Equal(ExitCodes.BadInput, CliApp.Run(new[] { "report", Path.Combine(sweep.Experiment, "nothing") }, bad, plain: true));
        Assert.Single(bad.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("does not exist", bad.Output);
    }
}

/// <summary>The store's exploits, an older store without them, inferred domains, and a report beside a live writer.</summary>
public class ReportStoreTests
{
    [Fact]
    public void A_pbt_run_stores_its_exploits_and_the_report_draws_them()
    {
        using var temp = new TempDir();
        var grid = ReportSweeps.Pbt(temp.Path);

        var data = SweepData.Load(grid.ExperimentPath);
        Assert.NotEmpty(data.Exploits);
        var ids = data.Trials.Select(t => t.Id).ToHashSet();
        Assert.All(data.Exploits, x =>
        {
            Assert.Contains(x.TrialId, ids);
            Assert.Contains(x.DonorId, ids);
            Assert.NotEqual(x.TrialId, x.DonorId);
            Assert.Equal(0, x.Iteration % 4);
            Assert.True(x.NewParams.ContainsKey("lr") && x.OldParams.ContainsKey("lr"));
        });
        Assert.Contains(LearningCurvesPlot.Draw(data)!.GetPlottables().OfType<ScottPlot.Plottables.Markers>(),
            m => m.LegendText.StartsWith("PBT exploit", StringComparison.Ordinal));
        foreach (var p in SweepReport.Write(grid.ExperimentPath).Pictures)
            PictureChecks.AssertPicture(File.ReadAllBytes(p), ReportStyle.Width, ReportStyle.Height, Path.GetFileName(p));
    }

    [Fact]
    public void An_older_store_without_exploits_or_domains_opens_read_only_with_none_and_inferred_domains()
    {
        using var temp = new TempDir();
        var grid = ReportSweeps.Pbt(temp.Path);
        using (var c = new SqliteConnection($"Data Source={Path.Combine(grid.ExperimentPath, SqliteExperimentStore.FileName)};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"DROP TABLE exploits; DELETE FROM experiment WHERE key = '{ParamDomains.StateKey}'";
            cmd.ExecuteNonQuery();
        }

        var data = SweepData.Load(grid.ExperimentPath);

        Assert.Empty(data.Exploits);
        var lr = Assert.Single(data.Domains);
        Assert.Equal("lr", lr.Name);
        Assert.Equal(ParamKind.Float, lr.Kind);
        Assert.Equal(data.Trials.Min(t => (double)t.Params["lr"]!), lr.Low);
    }

    [Fact]
    public void Inferred_domains_are_ranges_log_when_positive_over_a_factor_of_100_and_categories_otherwise()
    {
        var samples = new[]
        {
            new Dictionary<string, object?> { ["lr"] = 1e-4, ["n"] = 2L, ["act"] = "relu", ["m"] = 0.5 },
            new Dictionary<string, object?> { ["lr"] = 1e-1, ["n"] = 8L, ["act"] = "tanh", ["m"] = 0.9 },
            new Dictionary<string, object?> { ["lr"] = 1e-3, ["n"] = 4L, ["act"] = "relu", ["m"] = 0.7 },
        };
        var d = ParamDomains.Infer(samples).ToDictionary(x => x.Name);
        Assert.True(d["lr"] is { Kind: ParamKind.Float, Log: true, Low: 1e-4, High: 1e-1 });
        Assert.True(d["n"] is { Kind: ParamKind.Integer, Log: false, Low: 2, High: 8 });
        Assert.Equal(new object?[] { "relu", "tanh" }, d["act"].Categories);
        Assert.False(d["m"].Log);
    }

    [Fact]
    public async Task A_report_on_an_experiment_whose_writer_is_committing_does_not_block_it()
    {
        using var temp = new TempDir();
        var grid = ReportSweeps.Pbt(temp.Path);
        using var writer = SqliteExperimentStore.Open(grid.ExperimentPath);
        var trial = new Trial("lr_toy", TrialConfig.From(("lr", 0.01)), trialId: "live");
        writer.TrialAdded(trial);
        writer.Flush();

        var report = Task.Run(() => SweepReport.Write(grid.ExperimentPath));
        var writes = Task.Run(() =>
        {
            for (int i = 1; i <= 50; i++)
            {
                writer.ResultReported(trial, new TrialResult { Metrics = [new("mean_accuracy", (object)(double)i)], TrainingIteration = i, TrialId = "live" });
                writer.Flush();
            }
        });
        await Task.WhenAll(report, writes).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(50, writer.Count("results") - grid.Sum(t => grid.HistoryOf(t.TrialId).Count));
        Assert.Contains(SweepData.Load(grid.ExperimentPath).Trials, t => t.Id == "live" && t.Results.Count == 50);
    }
}
