using System.Globalization;
using Spectre.Console;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Trainables;

namespace TorchTrials.Cli.Rendering;

/// <summary>Renders result grids and snapshots for a person: a table, counts, and the best trial with its checkpoint.</summary>
internal static class ResultsView
{
    public static void WriteSummary(IAnsiConsole console, ResultGrid grid, int maxRows = 30)
    {
        var counts = string.Join(", ", grid.GroupBy(t => t.Status).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key.ToString().ToUpperInvariant()}"));
        console.WriteLine($"Experiment {grid.ExperimentPath}: {grid.Count} trials ({counts})");
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("trial");
        table.AddColumn("status");
        var paramKeys = grid.SelectMany(t => t.Config.Keys).Distinct(StringComparer.Ordinal).Take(6).ToList();
        foreach (var k in paramKeys) table.AddColumn(new TableColumn(Markup.Escape(k)).RightAligned());
        table.AddColumn(new TableColumn("iter").RightAligned());
        if (grid.Metric is not null) table.AddColumn(new TableColumn(Markup.Escape(grid.Metric)).RightAligned());
        table.AddColumn("error");

        var ordered = grid.Metric is { } metric && grid.Mode is { } mode
            ? grid.OrderByDescending(t => t.Score(metric, mode, MetricScope.Last) ?? double.NegativeInfinity).ToList()
            : grid.ToList();
        foreach (var t in ordered.Take(maxRows))
        {
            var cells = new List<string> { t.TrialId, StatusMarkup(t.Status) };
            cells.AddRange(paramKeys.Select(k => Markup.Escape(t.Config.TryGetValue(k, out var v) ? TrialConfig.Format(v) : "")));
            cells.Add((t.LastResult?.TrainingIteration ?? 0).ToString(CultureInfo.InvariantCulture));
            if (grid.Metric is not null)
                cells.Add(t.LastResult is { } r && r.TryGetDouble(grid.Metric, out var value) ? value.ToString("0.0000", CultureInfo.InvariantCulture) : "");
            cells.Add(Markup.Escape(Shorten(t.Error ?? "", 60)));
            table.AddRow(cells.ToArray());
        }
        if (ordered.Count > maxRows) table.Caption($"... and {ordered.Count - maxRows} more");
        console.Write(table);
        WriteBest(console, grid);
    }

    public static void WriteBest(IAnsiConsole console, ResultGrid grid)
    {
        if (grid.Metric is null || grid.Mode is null) return;
        TrialSummary best;
        try
        {
            best = grid.GetBestResult();
        }
        catch (InvalidOperationException)
        {
            console.WriteLine($"No trial reported {grid.Metric} yet.");
            return;
        }
        var value = best.LastResult!.GetDouble(grid.Metric);
        console.WriteLine($"Best trial: {best.TrialId} {grid.Metric}={value.ToString("0.0000", CultureInfo.InvariantCulture)} ({best.Config})");
        console.WriteLine($"  log directory: {best.LogDirectory}");
        console.WriteLine($"  checkpoint: {best.CheckpointPath ?? "(none saved to disk: set checkpoint.frequency or checkpoint.at_end)"}");
    }

    public static string StatusMarkup(TrialStatus status) => status switch
    {
        TrialStatus.Running => "[green]RUNNING[/]",
        TrialStatus.Terminated => "[blue]TERMINATED[/]",
        TrialStatus.Error => "[red]ERROR[/]",
        TrialStatus.Paused => "[yellow]PAUSED[/]",
        _ => "PENDING",
    };

    private static string Shorten(string text, int max)
    {
        var firstLine = text.Split('\n')[0];
        return firstLine.Length <= max ? firstLine : firstLine[..(max - 1)] + "…";
    }
}
