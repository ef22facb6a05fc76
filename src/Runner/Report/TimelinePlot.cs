using System.Globalization;
using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 6, the timeline of trials per slot in the manner of Optuna's <c>plot_timeline</c> and Ray's trial Gantt view:
/// each stretch a trial ran (<see cref="SweepTrial.Running"/>) is a horizontal bar on the row of the slot or fused lane it
/// ran in, against the wall time since the sweep's first start, coloured by the trial's final status; idle slots are the
/// empty space between bars. Rows come from what the store recorded (<see cref="Layout"/>); a trial that moved (paused and
/// resumed elsewhere) is drawn where it last ran, since the store keeps only its last slot and lane.
/// </summary>
public static class TimelinePlot
{
    /// <summary>The row axis's label when no trial recorded its slot (older experiments): rows are then packed spans.</summary>
    public const string UnrecordedAxis = "row (slots not recorded)";

    /// <summary>The timeline; null when no trial ever ran.</summary>
    public static Plot? Draw(SweepData data)
    {
        if (Layout(data) is not { } layout) return null;
        var (unit, divisor) = ReportStyle.TimeUnit(layout.Seconds);
        int ran = layout.Bars.Select(b => b.Trial.Id).Distinct(StringComparer.Ordinal).Count();
        var plot = ReportStyle.NewPlot(
            layout.SlotsRecorded
                ? $"Timeline: {ran} trials on {layout.Rows.Count} slots and lanes"
                : $"Timeline: {ran} trials packed into {layout.Rows.Count} rows",
            $"wall time since the sweep's first start ({unit})",
            layout.SlotsRecorded ? "slot (device, or fused array.lane)" : UnrecordedAxis);

        int top = layout.Rows.Count - 1;
        var byState = layout.Bars.GroupBy(b => StateOf(b.Trial)).OrderBy(g => g.Key);
        foreach (var group in byState)
        {
            var color = ColorOf(group.Key);
            var bars = group.Select(b => new Bar
            {
                Position = top - b.Row,
                ValueBase = b.Start / divisor,
                Value = b.End / divisor,
                Size = 0.7,
                FillColor = color,
                LineColor = Colors.White,
                LineWidth = 1,
            }).ToList();
            var plottable = plot.Add.Bars(bars);
            plottable.Horizontal = true;
            int trials = group.Select(b => b.Trial.Id).Distinct(StringComparer.Ordinal).Count();
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = $"{LabelOf(group.Key)}: {trials} trial{(trials == 1 ? "" : "s")}", FillColor = color });
        }
        for (int i = 1; i < layout.Rows.Count; i++)
        {
            if (layout.Rows[i].Group == layout.Rows[i - 1].Group) continue;
            var line = plot.Add.HorizontalLine(top - i + 0.5, 1, Colors.Gray, LinePattern.Dashed);
            line.ExcludeFromLegend = true;
        }
        plot.Axes.Left.SetTicks(
            Enumerable.Range(0, layout.Rows.Count).Select(i => (double)(top - i)).ToArray(),
            layout.Rows.Select(r => r.Label).ToArray());
        plot.Axes.SetLimits(0, Math.Max(layout.Seconds, 1e-3) / divisor * 1.02, -0.6, top + 0.6);
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }

    /// <summary>
    /// The rows and bars of the timeline; null when no trial ever ran. With slots recorded, rows are grouped: a fused array
    /// (<c>a3</c>) has one row per lane (<c>a3.0</c> .. the highest lane seen), a device slot (<c>GPU0</c>, <c>CPU</c>) as
    /// many rows as trials overlapped on it, and trials without a record one group of their own; groups are in order of
    /// their first start. Without any record, all spans are packed into the fewest rows (as many as overlapped at most).
    /// Packing is greedy by start time: a span takes the lowest row free when it starts, so a gap lets a row be reused.
    /// A span still open ends at the latest time the store knows of.
    /// </summary>
    public static TimelineLayout? Layout(SweepData data)
    {
        var spans = data.Trials.SelectMany(t => t.Running.Select(s => (Trial: t, Span: s))).ToList();
        if (spans.Count == 0) return null;
        var origin = spans.Min(s => s.Span.Start);
        var now = LatestTime(data, spans.Select(s => s.Span));
        bool recorded = spans.Any(s => s.Trial.Lane is not null || s.Trial.Slot is not null);

        var groups = spans
            .Select(s => (s.Trial, Start: (s.Span.Start - origin).TotalSeconds, End: ((s.Span.End ?? now) - origin).TotalSeconds, Open: s.Span.End is null))
            .Select(s => (Span: s with { End = Math.Max(s.Start, s.End) }, Key: recorded ? KeyOf(s.Trial) : new RowKey("", null)))
            .GroupBy(s => s.Key.Group, StringComparer.Ordinal)
            .OrderBy(g => g.Min(s => s.Span.Start)).ThenBy(g => g.Key, StringComparer.Ordinal);

        var rows = new List<TimelineRow>();
        var bars = new List<TimelineBar>();
        foreach (var group in groups)
        {
            int first = rows.Count;
            var items = group.Select(s => s.Span).ToList();
            var lanes = group.Select(s => s.Key.Lane).ToList();
            int count;
            if (lanes.All(l => l is not null))
            {
                count = lanes.Max(l => l!.Value) + 1;
                for (int i = 0; i < items.Count; i++) bars.Add(new TimelineBar(items[i].Trial, first + lanes[i]!.Value, items[i].Start, items[i].End, items[i].Open));
                for (int lane = 0; lane < count; lane++) rows.Add(new TimelineRow(group.Key, $"{group.Key}.{lane}"));
                continue;
            }
            var packed = Pack(items.Select(s => (s.Start, s.End)).ToList());
            count = packed.Count == 0 ? 0 : packed.Max() + 1;
            for (int i = 0; i < items.Count; i++) bars.Add(new TimelineBar(items[i].Trial, first + packed[i], items[i].Start, items[i].End, items[i].Open));
            string name = !recorded ? "" : group.Key.Length == 0 ? "not recorded" : group.Key;
            for (int r = 0; r < count; r++)
                rows.Add(new TimelineRow(group.Key, name.Length == 0 ? (r + 1).ToString(CultureInfo.InvariantCulture) : count == 1 ? name : $"{name} #{r + 1}"));
        }
        return new TimelineLayout(rows, bars, recorded, (now - origin).TotalSeconds);
    }

    /// <summary>The row of each span (greedy by start time: the lowest row whose last span ended by then).</summary>
    internal static IReadOnlyList<int> Pack(IReadOnlyList<(double Start, double End)> spans)
    {
        var rowOf = new int[spans.Count];
        var rowEnds = new List<double>();
        foreach (int i in Enumerable.Range(0, spans.Count).OrderBy(i => spans[i].Start).ThenBy(i => spans[i].End))
        {
            int row = rowEnds.FindIndex(end => end <= spans[i].Start);
            if (row < 0)
            {
                row = rowEnds.Count;
                rowEnds.Add(0);
            }
            rowEnds[row] = spans[i].End;
            rowOf[i] = row;
        }
        return rowOf;
    }

    private readonly record struct RowKey(string Group, int? Lane);

    /// <summary>A fused trial's array and lane (<c>a3.5</c>: group a3, lane 5); otherwise its device slot, or "" unrecorded.</summary>
    private static RowKey KeyOf(SweepTrial trial)
    {
        if (trial.Lane is { } lane && lane.LastIndexOf('.') is var dot and > 0
            && int.TryParse(lane.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            return new RowKey(lane[..dot], index);
        return new RowKey(trial.Slot ?? "", null);
    }

    /// <summary>The latest moment the store knows of: the last span end or start, result, or decision.</summary>
    private static DateTimeOffset LatestTime(SweepData data, IEnumerable<RunningSpan> spans)
    {
        var times = spans.Select(s => s.End ?? s.Start)
            .Concat(data.Trials.SelectMany(t => t.Results.Where(r => r.Timestamp > 0).Select(r => DateTimeOffset.FromUnixTimeSeconds(r.Timestamp))))
            .Concat(data.Decisions.Select(d => d.At));
        return times.Max();
    }

    /// <summary>A trial's final state as the legend names it.</summary>
    public enum State
    {
        Terminated,
        StoppedEarly,
        Error,
        Running,
        Paused,
    }

    /// <summary>Terminated on its own, stopped early by a scheduler or stopper, failed, still running, or paused (or pending again).</summary>
    public static State StateOf(SweepTrial trial) => trial switch
    {
        { Status: TrialStatus.Error } => State.Error,
        { StoppedBy: not null } => State.StoppedEarly,
        { Status: TrialStatus.Terminated } => State.Terminated,
        { Status: TrialStatus.Running } => State.Running,
        _ => State.Paused,
    };

    private static string LabelOf(State state) => state switch
    {
        State.Terminated => "terminated",
        State.StoppedEarly => "stopped early",
        State.Error => "error",
        State.Running => "running",
        _ => "paused",
    };

    private static Color ColorOf(State state) => state switch
    {
        State.Terminated => ReportStyle.Completed,
        State.StoppedEarly => ReportStyle.Stopped,
        State.Error => ReportStyle.Failed,
        State.Running => ReportStyle.Running,
        _ => ReportStyle.Paused,
    };
}

/// <summary>The timeline's rows, top to bottom, and its bars; <paramref name="Seconds"/> is the span of wall time shown.</summary>
/// <param name="SlotsRecorded">False when no trial recorded its slot or lane: the rows are then packed spans, not slots.</param>
public sealed record TimelineLayout(IReadOnlyList<TimelineRow> Rows, IReadOnlyList<TimelineBar> Bars, bool SlotsRecorded, double Seconds);

/// <summary>One row: the group it belongs to (a fused array <c>a3</c>, a device <c>GPU0</c>, "" unrecorded) and its tick label.</summary>
public sealed record TimelineRow(string Group, string Label);

/// <summary>One stretch a trial ran, on row <paramref name="Row"/> of <see cref="TimelineLayout.Rows"/>, in seconds since the sweep's first start.</summary>
/// <param name="Open">True while it still runs: it is drawn up to the latest time the store knows of.</param>
public sealed record TimelineBar(SweepTrial Trial, int Row, double Start, double End, bool Open);
