using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 1, the optimisation history in the manner of Optuna's <c>plot_optimization_history</c>: each trial's final
/// metric as a point (completed and stopped-early trials apart) and the best value so far as a step line, against the
/// trials' order (<see cref="Draw"/>) or against the wall time at which each trial last ran (<see cref="DrawOverTime"/>).
/// </summary>
public static class HistoryPlot
{
    /// <summary>Final metric and best so far against trial number; null when no trial reported the metric.</summary>
    public static Plot? Draw(SweepData data)
    {
        var points = data.Trials.Select((t, i) => (Trial: t, X: (double)(i + 1), Y: ReportStyle.FinalMetric(data, t)))
            .Where(p => p.Y is not null).Select(p => (p.Trial, p.X, Y: p.Y!.Value)).ToList();
        if (points.Count == 0) return null;
        var plot = ReportStyle.NewPlot($"Optimisation history: {data.Metric} of {data.Trials.Count} trials", "trial number (creation order)", ReportStyle.MetricLabel(data));
        AddPoints(data, plot, points);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        return plot;
    }

    /// <summary>Final metric and best so far against the wall time since the sweep started; null without timed trials.</summary>
    public static Plot? DrawOverTime(SweepData data)
    {
        var start = SweepStart(data);
        if (start is null) return null;
        var timed = data.Trials.Select(t => (Trial: t, End: EndTime(t), Y: ReportStyle.FinalMetric(data, t)))
            .Where(p => p.End is not null && p.Y is not null)
            .Select(p => (p.Trial, Seconds: (p.End!.Value - start.Value).TotalSeconds, Y: p.Y!.Value))
            .OrderBy(p => p.Seconds).ToList();
        if (timed.Count == 0) return null;
        var (unit, divisor) = ReportStyle.TimeUnit(timed[^1].Seconds);
        var plot = ReportStyle.NewPlot($"Optimisation history over time: {data.Metric} of {data.Trials.Count} trials",
            $"wall time since the sweep started ({unit}), at each trial's last result", ReportStyle.MetricLabel(data));
        AddPoints(data, plot, timed.Select(p => (p.Trial, p.Seconds / divisor, p.Y)).ToList());
        return plot;
    }

    private static void AddPoints(SweepData data, Plot plot, List<(SweepTrial Trial, double X, double Y)> points)
    {
        AddGroup(plot, points.Where(p => p.Trial.StoppedBy is null && p.Trial.Status != TrialStatus.Error), ReportStyle.Completed, MarkerShape.FilledCircle, "trial (ran to its end or still running)");
        AddGroup(plot, points.Where(p => p.Trial.StoppedBy is not null), ReportStyle.Stopped, MarkerShape.FilledTriangleDown, "trial stopped early (last value)");
        AddGroup(plot, points.Where(p => p.Trial.Status == TrialStatus.Error), ReportStyle.Failed, MarkerShape.Cross, "trial failed (last value)");

        var xs = new List<double>();
        var ys = new List<double>();
        double? best = null;
        foreach (var p in points)
        {
            if (best is null || ReportStyle.Better(data, p.Y, best.Value)) best = p.Y;
            xs.Add(p.X);
            ys.Add(best.Value);
        }
        var line = plot.Add.Scatter(xs.ToArray(), ys.ToArray(), ReportStyle.Best);
        line.ConnectStyle = ConnectStyle.StepHorizontal;
        line.LineWidth = 2.5f;
        line.MarkerSize = 0;
        line.LegendText = $"best so far ({ReportStyle.Format(best!.Value)})";
        plot.ShowLegend(data.Mode == MetricMode.Min ? Alignment.UpperRight : Alignment.LowerRight);
    }

    private static void AddGroup(Plot plot, IEnumerable<(SweepTrial Trial, double X, double Y)> group, Color color, MarkerShape shape, string label)
    {
        var list = group.ToList();
        if (list.Count == 0) return;
        var markers = plot.Add.Markers(list.Select(p => p.X).ToArray(), list.Select(p => p.Y).ToArray(), shape, 9, color.WithAlpha(0.8));
        markers.LegendText = $"{label}: {list.Count}";
    }

    /// <summary>The earliest time any trial started running (or, without status changes, its first result's timestamp).</summary>
    internal static DateTimeOffset? SweepStart(SweepData data)
    {
        var starts = data.Trials.SelectMany(t => t.Running.Select(r => r.Start))
            .Concat(data.Trials.SelectMany(t => t.Results.Take(1).Where(r => r.Timestamp > 0).Select(r => DateTimeOffset.FromUnixTimeSeconds(r.Timestamp).AddSeconds(-r.TimeTotalS))))
            .ToList();
        return starts.Count == 0 ? null : starts.Min();
    }

    /// <summary>When the trial last ran: the end of its last running stretch, or its last result's timestamp.</summary>
    internal static DateTimeOffset? EndTime(SweepTrial trial)
    {
        if (trial.Running.Count > 0 && trial.Running[^1].End is { } end) return end;
        if (trial.Results.Count > 0 && trial.Results[^1].Timestamp > 0) return DateTimeOffset.FromUnixTimeSeconds(trial.Results[^1].Timestamp);
        return trial.Running.Count > 0 ? trial.Running[^1].Start : null;
    }
}
