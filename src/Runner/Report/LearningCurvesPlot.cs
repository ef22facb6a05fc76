using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 2, the learning curves in the manner of Optuna's <c>plot_intermediate_values</c>: every trial's metric against
/// training_iteration as a thin line, with the schedulers' decisions marked where they were made: STOP decisions of ASHA,
/// HyperBand and BOHB at their rungs, median-rule stops, other stoppers' stops, and PBT/PB2 exploits (at the donor's
/// iteration the recipient restarted from), each kind as its own marker in the legend.
/// </summary>
public static class LearningCurvesPlot
{
    /// <summary>The curves and decision marks; null when no trial reported the metric.</summary>
    public static Plot? Draw(SweepData data)
    {
        if (data.Metric is null) return null;
        var plot = ReportStyle.NewPlot($"Learning curves: {data.Metric} of {data.Trials.Count} trials by iteration",
            "training_iteration (iterations)", ReportStyle.MetricLabel(data));
        int drawn = 0;
        var curves = new Dictionary<string, Dictionary<long, double>>(StringComparer.Ordinal);
        foreach (var trial in data.Trials)
        {
            var points = trial.Results.Select(r => (X: (double)r.TrainingIteration, Y: ReportStyle.MetricOf(data, r)))
                .Where(p => p.Y is not null).Select(p => (p.X, Y: p.Y!.Value)).ToList();
            var byIteration = new Dictionary<long, double>();
            foreach (var (x, y) in points) byIteration[(long)x] = y;
            curves[trial.Id] = byIteration;
            if (points.Count == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray(), ReportStyle.Series(drawn++).WithAlpha(0.6));
            line.LineWidth = 1.5f;
            line.MarkerSize = points.Count == 1 ? 4 : 0;
        }
        if (drawn == 0) return null;

        var rung = new List<(double, double)>();
        var median = new List<(double, double)>();
        var other = new List<(double, double)>();
        var sources = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var d in data.Decisions.Where(d => d.Decision == "STOP"))
        {
            if (!curves.TryGetValue(d.TrialId, out var curve) || !curve.TryGetValue(d.Iteration, out var y)) continue;
            var kind = Kind(d.Source);
            (kind == StopKind.Rung ? rung : kind == StopKind.Median ? median : other).Add((d.Iteration, y));
            if (kind == StopKind.Rung) sources.Add(ReportStyle.ShortSource(d.Source));
        }
        var exploits = new List<(double, double)>();
        foreach (var x in data.Exploits)
        {
            if (curves.TryGetValue(x.TrialId, out var curve) && curve.TryGetValue(x.Iteration, out var y)
                || curves.TryGetValue(x.DonorId, out curve) && curve.TryGetValue(x.Iteration, out y))
                exploits.Add((x.Iteration, y));
        }
        AddMarks(plot, rung, MarkerShape.FilledTriangleDown, ReportStyle.Best, $"stopped at a rung by {string.Join("/", sources)}");
        AddMarks(plot, median, MarkerShape.FilledSquare, ReportStyle.Median, "stopped by the median rule");
        AddMarks(plot, other, MarkerShape.Cross, ReportStyle.Failed, "stopped by a stopper");
        AddMarks(plot, exploits, MarkerShape.FilledDiamond, ReportStyle.Exploit, "PBT exploit (took a better trial's state)");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        if (rung.Count + median.Count + other.Count + exploits.Count > 0)
            plot.ShowLegend(data.Mode == MetricMode.Min ? Alignment.UpperRight : Alignment.LowerRight);
        return plot;
    }

    private enum StopKind
    {
        Rung,
        Median,
        Other,
    }

    private static StopKind Kind(string source) =>
        source.Contains("Asha", StringComparison.OrdinalIgnoreCase) || source.Contains("HyperBand", StringComparison.OrdinalIgnoreCase) ? StopKind.Rung
        : source.Contains("Median", StringComparison.OrdinalIgnoreCase) ? StopKind.Median
        : StopKind.Other;

    private static void AddMarks(Plot plot, List<(double X, double Y)> marks, MarkerShape shape, Color color, string label)
    {
        if (marks.Count == 0) return;
        var markers = plot.Add.Markers(marks.Select(m => m.X).ToArray(), marks.Select(m => m.Y).ToArray(), shape, 11, color);
        markers.LegendText = $"{label}: {marks.Count}";
    }
}
