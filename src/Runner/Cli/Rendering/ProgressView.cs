using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;

namespace TorchTrials.Cli.Rendering;

/// <summary>
/// Renders an <see cref="ExperimentSnapshot"/>: a live table on a terminal, one line per update otherwise. It only ever
/// reads snapshots (immutable), never the controller's objects.
/// </summary>
internal static class ProgressView
{
    /// <summary>The table a person sees while a sweep runs: running trials first, then the best finished, up to <paramref name="maxRows"/>.</summary>
    public static IRenderable Table(ExperimentSnapshot snapshot, int maxRows = 20)
    {
        var table = new Table().Border(TableBorder.Rounded).Expand();
        table.Title = new TableTitle(Header(snapshot));
        table.AddColumn("trial");
        table.AddColumn("status");
        var paramKeys = snapshot.Trials.SelectMany(t => t.Params.Select(p => p.Key)).Distinct(StringComparer.Ordinal).Take(5).ToList();
        foreach (var key in paramKeys) table.AddColumn(new TableColumn(Markup.Escape(key)).RightAligned());
        table.AddColumn(new TableColumn("iter").RightAligned());
        if (snapshot.Metric is not null) table.AddColumn(new TableColumn(Markup.Escape(snapshot.Metric)).RightAligned());
        table.AddColumn(new TableColumn("time (s)").RightAligned());
        table.AddColumn("resources");

        foreach (var row in Rows(snapshot, maxRows))
        {
            var cells = new List<string> { Markup.Escape(row.TrialId), ResultsView.StatusMarkup(row.Status) };
            var values = row.Params.ToDictionary(p => p.Key, p => p.Value);
            cells.AddRange(paramKeys.Select(k => Markup.Escape(values.GetValueOrDefault(k, ""))));
            cells.Add(row.Iteration.ToString(CultureInfo.InvariantCulture));
            if (snapshot.Metric is not null) cells.Add(row.Metric?.ToString("0.0000", CultureInfo.InvariantCulture) ?? "");
            cells.Add(row.TimeTotalS.ToString("0.0", CultureInfo.InvariantCulture));
            cells.Add(Markup.Escape(row.Resources));
            table.AddRow(cells.ToArray());
        }
        if (snapshot.Trials.Count > maxRows) table.Caption = new TableTitle($"{snapshot.Trials.Count - maxRows} more trials not shown");
        return table;
    }

    /// <summary>One status line, for logs and redirected output.</summary>
    public static string Line(ExperimentSnapshot snapshot)
    {
        var best = snapshot.Best is { Metric: { } v } b
            ? $" | best {snapshot.Metric}={v.ToString("0.0000", CultureInfo.InvariantCulture)} ({b.TrialId})"
            : "";
        return $"[{snapshot.Elapsed:hh\\:mm\\:ss}] {Counts(snapshot)}{best} | {snapshot.ResourceUsage}";
    }

    private static string Header(ExperimentSnapshot snapshot) =>
        Markup.Escape($"{snapshot.Name}  {snapshot.Elapsed:hh\\:mm\\:ss}  {Counts(snapshot)}  {snapshot.ResourceUsage}");

    private static string Counts(ExperimentSnapshot snapshot) =>
        string.Join(", ", snapshot.Counts.Where(c => c.Value > 0).Select(c => $"{c.Value} {c.Key.ToString().ToUpperInvariant()}"));

    private static IEnumerable<TrialRow> Rows(ExperimentSnapshot snapshot, int maxRows)
    {
        double sign = snapshot.Mode == TorchTrials.Runner.Schedulers.MetricMode.Min ? -1 : 1;
        return snapshot.Trials
            .OrderBy(r => r.Status switch { TrialStatus.Running => 0, TrialStatus.Paused => 1, TrialStatus.Error => 3, TrialStatus.Pending => 4, _ => 2 })
            .ThenByDescending(r => r.Metric is { } m ? sign * m : double.NegativeInfinity)
            .Take(maxRows);
    }
}
