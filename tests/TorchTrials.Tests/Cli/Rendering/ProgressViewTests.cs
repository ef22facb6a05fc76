using System.Globalization;
using Spectre.Console.Testing;
using TorchTrials.Cli.Rendering;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Schedulers;

namespace TorchTrials.Tests.Cli.Rendering;

/// <summary>The live table as a person sees it on a terminal of a given size (Spectre's test console).</summary>
public class ProgressViewTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly string[] StatusWordList = { "RUNNING", "PENDING", "PAUSED", "TERMINATED", "STOPPED", "ERROR" };

    /// <summary>
    /// A digits-mlp sweep in mid-run as the snapshot publisher builds it: ids as the search generator makes them, the five
    /// hyperparameters of examples/digits-mlp.yaml, and statuses in the given numbers (running first, then pending,
    /// terminated, stopped by ASHA, errored). Metrics vary with the index so that ranks differ from the order.
    /// </summary>
    private static ExperimentSnapshot Sweep(int running, int pending, int terminated, int stopped, int errors, MetricMode mode = MetricMode.Max)
    {
        var statuses = Enumerable.Repeat((TrialStatus.Running, (string?)null), running)
            .Concat(Enumerable.Repeat((TrialStatus.Pending, (string?)null), pending))
            .Concat(Enumerable.Repeat((TrialStatus.Terminated, (string?)null), terminated))
            .Concat(Enumerable.Repeat((TrialStatus.Terminated, (string?)nameof(AshaScheduler)), stopped))
            .Concat(Enumerable.Repeat((TrialStatus.Error, (string?)null), errors))
            .ToList();
        var rows = statuses.Select((s, i) =>
        {
            bool started = s.Item1 != TrialStatus.Pending;
            double last = 0.80 + ((i * 37) % 19) / 100.0;
            double best = last + ((i * 7) % 3) / 100.0;
            if (mode == MetricMode.Min) best = last - ((i * 7) % 3) / 100.0;
            var parameters = new List<KeyValuePair<string, string>>
            {
                new("lr", (0.0003 * Math.Pow(1.19, i)).ToString("G6", CultureInfo.InvariantCulture)),
                new("width", new[] { "64", "128", "256" }[i % 3]),
                new("depth", (1 + i % 2).ToString(CultureInfo.InvariantCulture)),
                new("dropout", (0.3 * ((i * 13) % 17) / 17.0).ToString("G6", CultureInfo.InvariantCulture)),
                new("batch_size", new[] { "32", "64", "128" }[i % 3]),
            };
            return new TrialRow(
                $"3f9c1a7e_{i + 1:D5}", s.Item1, parameters, started ? 1 + (i * 5) % 15 : 0, started ? last : null, "1 CPU",
                started ? 3.7 * (1 + i % 9) : 0, s.Item1 == TrialStatus.Error ? "Expected false to be true" : null,
                started ? best : null, s.Item2);
        }).ToList();
        var sign = mode == MetricMode.Min ? -1 : 1;
        var bestRow = rows.Where(r => r.BestMetric is not null).MaxBy(r => sign * r.BestMetric!.Value);
        var counts = Enum.GetValues<TrialStatus>().ToDictionary(s => s, s => rows.Count(r => r.Status == s));
        return new ExperimentSnapshot("digits-mlp", TimeSpan.FromSeconds(83), rows, counts,
            "Resources requested: 2/2 CPUs, 0/0 GPUs, 0.0/0.0 GiB GPU memory", "val_accuracy", mode, bestRow, Finished: false);
    }

    private static IReadOnlyList<string> Screen(ExperimentSnapshot snapshot, int width, int height)
    {
        var console = new TestConsole().Width(width).Height(height);
        console.Write(ProgressView.Table(snapshot));
        return console.Lines;
    }

    /// <summary>Words a person reads on screen: a token that is only the start or the end of one of them was broken.</summary>
    private static HashSet<string> Words(ExperimentSnapshot snapshot) =>
        snapshot.Trials.Select(t => t.TrialId)
            .Concat(StatusWordList)
            .Concat(snapshot.Trials.SelectMany(t => t.Params.Select(p => p.Key)))
            .Concat(new[] { "trial", "status", "iter", "best", "time", "resources", snapshot.Metric!, snapshot.Name, "running", "pending", "terminated" })
            .ToHashSet(StringComparer.Ordinal);

    private static void AssertNoBrokenWord(IReadOnlyList<string> screen, HashSet<string> words)
    {
        foreach (var line in screen)
            foreach (var token in line.Split(new[] { ' ', ',', ':', '(', ')' }, StringSplitOptions.RemoveEmptyEntries))
            {
                if (words.Contains(token) || token.EndsWith('…') || token.Length < 2) continue;
                var broken = words.FirstOrDefault(w => w.StartsWith(token, StringComparison.Ordinal)
                                                       || (!char.IsDigit(token[0]) && w.EndsWith(token, StringComparison.Ordinal)));
                Assert.True(broken is null, $"'{token}' is a piece of '{broken}' on the line \"{line}\"");
            }
    }

    public static TheoryData<int, int, int, int, int, int, int> Sizes => new()
    {
        // width, height, then running, pending, terminated, stopped by ASHA, errors
        { 80, 24, 2, 5, 9, 3, 1 },
        { 160, 50, 2, 5, 9, 3, 1 },
        { 80, 24, 4, 12, 26, 15, 3 },
        { 160, 50, 4, 30, 40, 20, 6 },
        { 40, 12, 2, 5, 9, 3, 1 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void The_table_fits_the_terminal_and_shows_title_counts_header_running_and_best_trials(
        int width, int height, int running, int pending, int terminated, int stopped, int errors)
    {
        var snapshot = Sweep(running, pending, terminated, stopped, errors);

        var screen = Screen(snapshot, width, height);
        output.WriteLine(string.Join('\n', screen));

        Assert.All(screen, line => Assert.True(line.Length <= width, $"{line.Length} columns: \"{line}\""));
        Assert.True(screen.Count <= height, $"{screen.Count} lines on a {height}-line terminal");
        AssertNoBrokenWord(screen, Words(snapshot));
        Assert.StartsWith("digits-mlp", screen[0]);
        var header = screen.Single(l => l.StartsWith("trial ", StringComparison.Ordinal));
        Assert.Contains("status", header);
        Assert.Contains("iter", header);
        if (width >= 80) Assert.Contains("val_accuracy", header);
        // One line per row: a shown trial has its id and status word on the same line.
        foreach (var row in snapshot.Trials.Where(r => r.Status == TrialStatus.Running).Append(snapshot.Best!))
            Assert.Contains(screen, l => l.StartsWith(row.TrialId + " ", StringComparison.Ordinal) && l.Contains(StatusWords.Word(row.Status, row.StoppedBy)));
    }

    [Theory]
    [InlineData(80, 24)]
    [InlineData(160, 50)]
    public void A_fused_sweep_shows_each_trials_array_and_lane_within_the_terminal(int width, int height)
    {
        var plain = Sweep(running: 4, pending: 12, terminated: 26, stopped: 15, errors: 3);
        var fused = plain with { Trials = plain.Trials.Select((r, i) => r.Status == TrialStatus.Pending ? r : r with { Lane = $"a{1 + i / 16}.{i % 16}" }).ToList() };
        fused = fused with { Best = fused.Trials.Single(r => r.TrialId == plain.Best!.TrialId) };

        var screen = Screen(fused, width, height);
        output.WriteLine(string.Join('\n', screen));

        Assert.All(screen, line => Assert.True(line.Length <= width, $"{line.Length} columns: \"{line}\""));
        var header = screen.Single(l => l.StartsWith("trial ", StringComparison.Ordinal));
        Assert.Contains("lane", header);
        var running = fused.Trials.First(r => r.Status == TrialStatus.Running);
        Assert.Contains(screen, l => l.StartsWith(running.TrialId + " ", StringComparison.Ordinal) && l.Contains($" {running.Lane} "));
        Assert.DoesNotContain("lane", Screen(plain, width, height).Single(l => l.StartsWith("trial ", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(80, 24)]
    [InlineData(160, 50)]
    public void The_summary_line_counts_trials_by_status_with_who_stopped_them(int width, int height)
    {
        var screen = Screen(Sweep(running: 2, pending: 5, terminated: 9, stopped: 3, errors: 1), width, height);

        Assert.Equal("20 trials: 2 running, 5 pending, 9 terminated, 3 stopped by ASHA, 1 error", screen[1]);
    }

    [Fact]
    public void At_80_columns_the_core_columns_and_some_hyperparameters_show_and_a_wide_terminal_adds_the_reason_and_the_rest()
    {
        var snapshot = Sweep(running: 2, pending: 5, terminated: 9, stopped: 3, errors: 1);

        var narrow = Screen(snapshot, 80, 24);
        var wide = Screen(snapshot, 160, 50);

        var narrowHeader = narrow.Single(l => l.StartsWith("trial ", StringComparison.Ordinal));
        Assert.Contains("lr", narrowHeader);
        Assert.DoesNotContain("batch_size", narrowHeader);
        var wideHeader = wide.Single(l => l.StartsWith("trial ", StringComparison.Ordinal));
        foreach (var column in new[] { "lr", "width", "depth", "dropout", "batch_size", "val_accuracy", "best", "time (s)" })
            Assert.Contains(column, wideHeader);
        Assert.Equal(3, wide.Count(l => l.Contains("STOPPED by ASHA")));
        Assert.All(snapshot.Trials, t => Assert.Contains(wide, l => l.StartsWith(t.TrialId + " ", StringComparison.Ordinal)));
    }

    [Fact]
    public void When_rows_are_left_out_the_best_are_kept_in_order_of_their_best_metric_and_the_last_line_says_so()
    {
        var snapshot = Sweep(running: 4, pending: 12, terminated: 26, stopped: 15, errors: 3);

        var screen = Screen(snapshot, 80, 24);

        var shown = snapshot.Trials.Where(t => screen.Any(l => l.StartsWith(t.TrialId + " ", StringComparison.Ordinal))).ToList();
        var others = snapshot.Trials.Where(t => t.Status != TrialStatus.Running).OrderByDescending(t => t.BestMetric ?? double.NegativeInfinity).ToList();
        int topShown = shown.Count - 4;
        Assert.Equal(others.Take(topShown).Select(t => t.TrialId).ToHashSet(), shown.Where(t => t.Status != TrialStatus.Running).Select(t => t.TrialId).ToHashSet());
        Assert.Equal($"… {60 - shown.Count} more trials (running and top {topShown} by val_accuracy shown)", screen[^1]);
    }

    [Fact]
    public void In_min_mode_the_best_is_the_lowest_value()
    {
        var snapshot = Sweep(running: 2, pending: 5, terminated: 30, stopped: 10, errors: 1, mode: MetricMode.Min);
        var lowest = snapshot.Trials.Where(t => t.BestMetric is not null).MinBy(t => t.BestMetric!.Value)!;

        var screen = Screen(snapshot, 80, 24);

        Assert.Contains($"best val_accuracy {lowest.BestMetric!.Value.ToString("0.0000", CultureInfo.InvariantCulture)} ({lowest.TrialId}", screen[0]);
        Assert.Contains(screen, l => l.StartsWith(lowest.TrialId + " ", StringComparison.Ordinal));
    }

    [Fact]
    public void With_more_running_trials_than_lines_the_best_trial_still_shows()
    {
        var sweep = Sweep(running: 30, pending: 0, terminated: 10, stopped: 0, errors: 0);
        // The best so far is a finished trial: it ranks below every running one.
        var champion = sweep.Trials[^1] with { BestMetric = 0.999 };
        var snapshot = sweep with { Trials = sweep.Trials.Take(sweep.Trials.Count - 1).Append(champion).ToList(), Best = champion };

        var screen = Screen(snapshot, 80, 24);

        Assert.True(screen.Count <= 24);
        Assert.Contains(screen, l => l.StartsWith(champion.TrialId + " ", StringComparison.Ordinal));
        Assert.Matches(@"^… \d+ more trials \(\d+ of 30 running shown\)$", screen[^1]);
    }

    [Fact]
    public void A_long_experiment_name_leaves_room_for_the_best_result_in_the_title()
    {
        // The CLI names an experiment by spec and start time when the spec has no name.
        var snapshot = Sweep(running: 2, pending: 5, terminated: 9, stopped: 3, errors: 1) with { Name = "digits-mlp_2026-12-01_23-47-14" };

        var title = Screen(snapshot, 80, 24)[0];

        Assert.StartsWith("digits-mlp_2026-12-01_23-47-14  ", title);
        Assert.Contains($"best val_accuracy {snapshot.Best!.BestMetric!.Value.ToString("0.0000", CultureInfo.InvariantCulture)} ({snapshot.Best.TrialId}", title);
    }

    [Fact]
    public void The_plain_line_has_the_counts_and_the_best_so_far()
    {
        var snapshot = Sweep(running: 2, pending: 5, terminated: 9, stopped: 3, errors: 1);

        var line = ProgressView.Line(snapshot);

        Assert.Contains("20 trials: 2 running, 5 pending, 9 terminated, 3 stopped by ASHA, 1 error", line);
        Assert.Contains($"best val_accuracy={snapshot.Best!.BestMetric!.Value.ToString("0.0000", CultureInfo.InvariantCulture)} ({snapshot.Best.TrialId})", line);
        Assert.EndsWith(snapshot.ResourceUsage, line);
    }

    [Fact]
    public void On_an_80_column_terminal_the_plain_line_gives_up_the_resources_then_the_best_trials_id_to_stay_one_line()
    {
        var small = Sweep(running: 2, pending: 1, terminated: 5, stopped: 0, errors: 0);
        var large = Sweep(running: 2, pending: 5, terminated: 9, stopped: 3, errors: 1);

        var fits = ProgressView.Line(small, 80);
        var tooLong = ProgressView.Line(large, 80);

        Assert.True(fits.Length <= 80, fits);
        Assert.EndsWith($"] 8 trials: 2 running, 1 pending, 5 terminated | best {small.Best!.BestMetric!.Value.ToString("0.0000", CultureInfo.InvariantCulture)}", fits);
        // The counts alone take 84 columns: the line keeps them and the best trial, and wraps between words.
        Assert.EndsWith($"1 error | best val_accuracy={large.Best!.BestMetric!.Value.ToString("0.0000", CultureInfo.InvariantCulture)} ({large.Best.TrialId})", tooLong);
    }
}
