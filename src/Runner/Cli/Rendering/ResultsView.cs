using System.Globalization;
using Spectre.Console;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Trainables;

namespace TorchTrials.Cli.Rendering;

/// <summary>Renders result grids and snapshots for a person: a table, counts, and the best trial with its checkpoint.</summary>
internal static class ResultsView
{
    /// <summary>
    /// The experiment's counts by status, then its trials ranked by their best metric (the running ones first), in a
    /// table that fits the console's width (columns by priority, never wrapped), then the best trial.
    /// </summary>
    public static void WriteSummary(IAnsiConsole console, ResultGrid grid, int maxRows = 30)
    {
        console.WriteLine($"Experiment {grid.ExperimentPath}");
        console.WriteLine(StatusWords.CountsLine(grid.Select(t => (t.Status, t.StoppedBy)).ToList()));
        var ordered = grid
            .OrderBy(t => t.Status == TrialStatus.Running ? 0 : 1)
            .ThenByDescending(t => grid.Metric is { } metric && grid.Mode is { } mode ? t.Score(metric, mode, MetricScope.All) ?? double.NegativeInfinity : 0)
            .ToList();
        var rows = ordered.Take(maxRows).ToList();
        foreach (var line in FittedTable.Render(Columns(grid, rows), rows.Count, console.Profile.Width)) console.MarkupLine(line);
        if (ordered.Count > maxRows) console.WriteLine($"... and {ordered.Count - maxRows} more");
        WriteBest(console, grid);
    }

    private static IReadOnlyList<FitColumn> Columns(ResultGrid grid, List<TrialSummary> rows)
    {
        var words = rows.Select(t => StatusWords.Word(t.Status, t.StoppedBy)).ToList();
        var columns = new List<FitColumn>
        {
            new("trial", rows.Select(t => t.TrialId).ToList()),
            new("status", words)
            {
                WideCells = rows.Select(t => StatusWords.WordWithReason(t.Status, t.StoppedBy)).ToList(),
                WidePriority = 30,
                Style = i => StatusWords.Style(words[i]),
            },
        };
        var keys = grid.SelectMany(t => t.Config.Keys).Distinct(StringComparer.Ordinal).ToList();
        for (int k = 0; k < keys.Count; k++)
        {
            var key = keys[k];
            columns.Add(new FitColumn(key, rows.Select(t => t.Config.TryGetValue(key, out var v) ? FittedTable.Compact(TrialConfig.Format(v)) : "").ToList()) { Priority = 10 + k, RightAligned = true });
        }
        columns.Add(new FitColumn("iter", rows.Select(t => (t.LastResult?.TrainingIteration ?? 0).ToString(CultureInfo.InvariantCulture)).ToList()) { RightAligned = true });
        if (rows.Any(t => t.Lane is not null))
            columns.Add(new FitColumn("lane", rows.Select(t => t.Lane ?? "").ToList()) { Priority = 5 });
        if (grid.Metric is { } metric)
        {
            columns.Add(new FitColumn(metric, rows.Select(t => t.LastResult is { } r && r.TryGetDouble(metric, out var v) ? Number(v) : "").ToList()) { RightAligned = true });
            if (grid.Mode is { } mode)
                columns.Add(new FitColumn("best", rows.Select(t => t.Score(metric, mode, MetricScope.All) is { } s ? Number(mode == MetricMode.Min ? -s : s) : "").ToList()) { Priority = 1, RightAligned = true });
        }
        if (rows.Any(t => t.Error is not null))
            columns.Add(new FitColumn("error", rows.Select(t => FirstLine(t.Error ?? "")).ToList()) { Priority = 5, MinWidth = 12 });
        return columns;
    }

    private static string Number(double value) => value.ToString("0.0000", CultureInfo.InvariantCulture);

    public static void WriteBest(IAnsiConsole console, ResultGrid grid)
    {
        if (grid.Metric is null || grid.Mode is null) return;
        TrialSummary best;
        try
        {
            best = grid.GetBestResult(scope: MetricScope.All);
        }
        catch (InvalidOperationException)
        {
            // Errored trials are never ranked (GetBestResult): a run of only those has no best, which is not "not yet".
            console.WriteLine(grid.AllErrored ? $"No best trial: all {grid.Count} trials errored." : $"No trial reported {grid.Metric} yet.");
            return;
        }
        var summary = best.Metrics[grid.Metric];
        var value = grid.Mode == MetricMode.Min ? summary.Min : summary.Max;
        var last = summary.Last != value ? $", last {Number(summary.Last)}" : "";
        console.WriteLine($"Best trial: {best.TrialId} {grid.Metric}={Number(value)}{last} ({best.Config})");
        WriteWhole(console, $"  log directory: {best.LogDirectory}");
        WriteWhole(console, $"  checkpoint: {best.CheckpointPath ?? "none on disk (set checkpoint.frequency or checkpoint.at_end)"}");
    }

    /// <summary>A line with a path, never broken by Spectre (a terminal may wrap it, but copying it gives one line).</summary>
    private static void WriteWhole(IAnsiConsole console, string line)
    {
        if (FittedTable.Width(line) <= console.Profile.Width) console.WriteLine(line);
        else console.Profile.Out.Writer.WriteLine(line);
    }

    private static string FirstLine(string text) => text.Split('\n')[0].TrimEnd('\r');
}
