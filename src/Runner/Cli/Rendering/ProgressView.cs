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
    /// <summary>
    /// The table a person sees while a sweep runs, laid out for the console it is rendered on (and again after a resize):
    /// the title and the counts by status on top, then one line per trial, the running ones first and then the best by
    /// the metric, as many as the height allows; columns by priority (trial, status, iteration and the metric first,
    /// then as many hyperparameters as fit), never wrapped.
    /// </summary>
    public static IRenderable Table(ExperimentSnapshot snapshot) => new Fitted(snapshot);

    /// <summary>The lines of <see cref="Table"/> (Spectre markup) for a console of <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static IReadOnlyList<string> Layout(ExperimentSnapshot snapshot, int width, int height)
    {
        var counts = StatusWords.CountsLines(snapshot.Trials.Select(t => (t.Status, t.StoppedBy)).ToList(), width);
        var lines = new List<string> { Title(snapshot, width) };
        lines.AddRange(counts.Select(Markup.Escape));

        // Title, counts, table header and rule; then the rows, and a last line naming what is left out when not all fit.
        int rowsRoom = Math.Max(1, height - lines.Count - 2);
        bool usageLine = rowsRoom - 1 >= snapshot.Trials.Count || height >= 40;
        if (usageLine && rowsRoom > 1)
        {
            lines.Add(Markup.Escape(FittedTable.Truncate(snapshot.ResourceUsage, width)));
            rowsRoom--;
        }
        var ranked = Rank(snapshot);
        var rows = ranked.Count <= rowsRoom ? ranked : Choose(snapshot, ranked, Math.Max(1, rowsRoom - 1));
        lines.AddRange(FittedTable.Render(Columns(snapshot, rows), rows.Count, width));
        if (rows.Count < ranked.Count) lines.Add(Markup.Escape(Hidden(snapshot, rows, ranked.Count - rows.Count, width)));
        return lines;
    }

    /// <summary>
    /// One status line, for logs and redirected output; on a terminal of <paramref name="width"/> columns the resources
    /// and then the best trial's id give way so that it stays one line, and where even that is too wide only the resources.
    /// </summary>
    public static string Line(ExperimentSnapshot snapshot, int width = int.MaxValue)
    {
        var head = $"[{snapshot.Elapsed:hh\\:mm\\:ss}] {StatusWords.CountsLine(snapshot.Trials.Select(t => (t.Status, t.StoppedBy)).ToList())}";
        var best = snapshot.Best is { BestMetric: { } v } b ? new[] { $" | best {snapshot.Metric}={Number(v)} ({b.TrialId})", $" | best {Number(v)}" } : new[] { "" };
        var usage = $" | {snapshot.ResourceUsage}";
        foreach (var line in new[] { head + best[0] + usage, head + best[0] }.Concat(best.Skip(1).Select(shorter => head + shorter)))
            if (FittedTable.Width(line) <= width) return line;
        return head + best[0];
    }

    private static string Number(double value) => value.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>Name, elapsed time and the best result so far: whole parts only, as many as fit.</summary>
    private static string Title(ExperimentSnapshot snapshot, int width)
    {
        var title = $"[bold]{Markup.Escape(FittedTable.Truncate(snapshot.Name, width))}[/]";
        int used = Math.Min(FittedTable.Width(snapshot.Name), width);
        // Each part in its longest form that fits; the best result goes before the elapsed time when both do not.
        var time = $"{snapshot.Elapsed:hh\\:mm\\:ss}";
        var parts = new List<string[]> { new[] { time + (snapshot.Finished ? " finished" : ""), time } };
        if (snapshot.Best is { BestMetric: { } v } best)
        {
            var value = $"best {snapshot.Metric} {Number(v)}";
            parts.Add(new[] { $"{value} ({best.TrialId}, {best.Status.ToString().ToLowerInvariant()})", $"{value} ({best.TrialId})", value });
        }
        if (parts.Count == 2 && used + 4 + parts[1][1].Length + parts[0][1].Length > width) parts.RemoveAt(0);
        foreach (var forms in parts)
        {
            var part = forms.FirstOrDefault(f => used + 2 + FittedTable.Width(f) <= width);
            if (part is null) break;
            title += "  " + Markup.Escape(part);
            used += 2 + FittedTable.Width(part);
        }
        return title;
    }

    /// <summary>Larger is better: the trial's best value of the metric signed by the mode; trials without one last.</summary>
    private static double Score(ExperimentSnapshot snapshot, TrialRow row) =>
        row.BestMetric is { } m && !double.IsNaN(m) ? (snapshot.Mode == MetricMode.Min ? -m : m) : double.NegativeInfinity;

    /// <summary>Running trials first, then the others by their best metric (without a metric: the furthest along).</summary>
    private static List<TrialRow> Rank(ExperimentSnapshot snapshot)
    {
        var order = snapshot.Trials.Select((row, index) => (row, index)).ToDictionary(x => x.row, x => x.index);
        return snapshot.Trials
            .OrderBy(r => r.Status == TrialStatus.Running ? 0 : 1)
            .ThenByDescending(r => snapshot.Metric is null ? r.Iteration : Score(snapshot, r))
            .ThenBy(r => r.Status switch { TrialStatus.Paused => 0, TrialStatus.Terminated => 1, TrialStatus.Error => 2, _ => 3 })
            .ThenBy(r => order[r])
            .ToList();
    }

    /// <summary><paramref name="room"/> rows of <paramref name="ranked"/>: the running trials, but never at the cost of the best trial.</summary>
    private static List<TrialRow> Choose(ExperimentSnapshot snapshot, List<TrialRow> ranked, int room)
    {
        var chosen = ranked.Take(room).ToList();
        if (snapshot.Best is { } best && !chosen.Any(r => r.TrialId == best.TrialId))
        {
            chosen[^1] = ranked.First(r => r.TrialId == best.TrialId);
        }
        return chosen;
    }

    private static string Hidden(ExperimentSnapshot snapshot, List<TrialRow> rows, int hidden, int width)
    {
        int running = snapshot.Trials.Count(t => t.Status == TrialStatus.Running);
        int runningShown = rows.Count(r => r.Status == TrialStatus.Running);
        var what = runningShown < running
            ? $"{runningShown} of {running} running shown"
            : snapshot.Metric is null ? "running shown first"
            : running > 0 ? $"running and top {rows.Count - runningShown} by {snapshot.Metric} shown"
            : $"top {rows.Count} by {snapshot.Metric} shown";
        var full = $"… {hidden} more {(hidden == 1 ? "trial" : "trials")} ({what})";
        return FittedTable.Width(full) <= width ? full : FittedTable.Truncate($"… {hidden} more", width);
    }

    private static IReadOnlyList<FitColumn> Columns(ExperimentSnapshot snapshot, List<TrialRow> rows)
    {
        var words = rows.Select(r => StatusWords.Word(r.Status, r.StoppedBy)).ToList();
        var columns = new List<FitColumn>
        {
            new("trial", rows.Select(r => r.TrialId).ToList()),
            new("status", words)
            {
                WideCells = rows.Select(r => StatusWords.WordWithReason(r.Status, r.StoppedBy)).ToList(),
                WidePriority = 30,
                Style = i => StatusWords.Style(words[i]),
            },
        };
        var keys = snapshot.Trials.SelectMany(t => t.Params.Select(p => p.Key)).Distinct(StringComparer.Ordinal).ToList();
        var values = rows.Select(r => r.Params.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal)).ToList();
        for (int k = 0; k < keys.Count; k++)
        {
            var key = keys[k];
            columns.Add(new FitColumn(key, values.Select(v => FittedTable.Compact(v.GetValueOrDefault(key, ""))).ToList()) { Priority = 10 + k, RightAligned = true });
        }
        columns.Add(new FitColumn("iter", rows.Select(r => r.Iteration.ToString(CultureInfo.InvariantCulture)).ToList()) { RightAligned = true });
        if (rows.Any(r => r.Lane is not null))
            columns.Add(new FitColumn("lane", rows.Select(r => r.Lane ?? "").ToList()) { Priority = 5 });
        if (snapshot.Metric is { } metric)
        {
            columns.Add(new FitColumn(metric, rows.Select(r => r.Metric is { } m ? Number(m) : "").ToList()) { RightAligned = true });
            columns.Add(new FitColumn("best", rows.Select(r => r.BestMetric is { } m ? Number(m) : "").ToList()) { Priority = 1, RightAligned = true });
        }
        columns.Add(new FitColumn("time (s)", rows.Select(r => r.TimeTotalS.ToString("0.0", CultureInfo.InvariantCulture)).ToList()) { Priority = 50, RightAligned = true });
        columns.Add(new FitColumn("resources", rows.Select(r => r.Resources).ToList()) { Priority = 60 });
        return columns;
    }

    /// <summary>Lays the snapshot out for the size it is rendered at, so a resized terminal gets a table that fits it.</summary>
    private sealed class Fitted(ExperimentSnapshot snapshot) : Renderable
    {
        protected override IEnumerable<Segment> Render(RenderOptions options, int maxWidth)
        {
            var lines = Layout(snapshot, maxWidth, options.Height ?? options.ConsoleSize.Height);
            return ((IRenderable)new Rows(lines.Select(l => new Markup(l)))).Render(options, maxWidth);
        }
    }
}
