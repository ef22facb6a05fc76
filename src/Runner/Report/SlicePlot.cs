using System.Globalization;
using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 4, one slice per hyperparameter in the manner of Optuna's <c>plot_slice</c>: each trial's final metric against
/// its value of the hyperparameter, on a log axis for log domains and as jittered columns for categorical ones (the
/// jitter is seeded, so a report is the same each time); the best trial is marked.
/// </summary>
public static class SlicePlot
{
    /// <summary>The slice of <paramref name="domain"/>; null when no trial has both a value for it and a metric.</summary>
    public static Plot? Draw(SweepData data, ParamDomain domain)
    {
        var points = data.Trials
            .Select(t => (Value: t.Params.TryGetValue(domain.Name, out var v) ? v : null, Y: ReportStyle.FinalMetric(data, t), HasValue: t.Params.ContainsKey(domain.Name)))
            .Where(p => p.HasValue && p.Y is not null).Select(p => (p.Value, Y: p.Y!.Value)).ToList();
        if (points.Count == 0) return null;
        var kind = domain.Kind == ParamKind.Categorical ? "categories" : domain.Log ? "log scale" : "linear scale";
        var plot = ReportStyle.NewPlot($"Slice: {data.Metric} against {domain.Name}", $"{domain.Name} ({kind})", ReportStyle.MetricLabel(data));

        double[] xs;
        if (domain.Kind == ParamKind.Categorical)
        {
            var categories = domain.Categories.ToList();
            foreach (var p in points)
                if (!categories.Any(c => SameValue(c, p.Value))) categories.Add(p.Value);
            var random = new Random(17);
            xs = points.Select(p => categories.FindIndex(c => SameValue(c, p.Value)) + (random.NextDouble() - 0.5) * 0.3).ToArray();
            plot.Axes.Bottom.SetTicks(Enumerable.Range(0, categories.Count).Select(i => (double)i).ToArray(),
                categories.Select(c => Trainables.TrialConfig.Format(c)).ToArray());
            plot.Axes.SetLimitsX(-0.5, categories.Count - 0.5);
        }
        else
        {
            var numbers = points.Select(p => ToDouble(p.Value)).ToArray();
            if (domain.Log && numbers.All(v => v > 0))
            {
                xs = numbers.Select(Math.Log10).ToArray();
                ReportStyle.LogAxis(plot.Axes.Bottom, domain.Low > 0 ? Math.Min(domain.Low, numbers.Min()) : numbers.Min(), Math.Max(domain.High, numbers.Max()));
            }
            else
            {
                xs = numbers;
            }
        }
        var ys = points.Select(p => p.Y).ToArray();
        var valid = Enumerable.Range(0, xs.Length).Where(i => double.IsFinite(xs[i])).ToList();
        if (valid.Count == 0) return null;
        var markers = plot.Add.Markers(valid.Select(i => xs[i]).ToArray(), valid.Select(i => ys[i]).ToArray(), MarkerShape.FilledCircle, 9, ReportStyle.Completed.WithAlpha(0.7));
        markers.LegendText = $"trial: {valid.Count}";
        int best = valid.Aggregate((a, b) => ReportStyle.Better(data, ys[b], ys[a]) ? b : a);
        var star = plot.Add.Marker(xs[best], ys[best], MarkerShape.FilledDiamond, 16, ReportStyle.Best);
        star.LegendText = $"best trial ({domain.Name} = {FormatValue(points[best].Value)}, {data.Metric} = {ReportStyle.Format(ys[best])})";
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }

    private static string FormatValue(object? value) => value switch
    {
        double d => ReportStyle.Format(d),
        _ => Trainables.TrialConfig.Format(value),
    };

    private static double ToDouble(object? value) => value switch
    {
        long l => l,
        int i => i,
        double d => d,
        float f => f,
        bool b => b ? 1 : 0,
        _ => double.NaN,
    };

    private static bool SameValue(object? a, object? b) => (a, b) switch
    {
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        _ => Equals(a, b) || string.Equals(Convert.ToString(a, CultureInfo.InvariantCulture), Convert.ToString(b, CultureInfo.InvariantCulture), StringComparison.Ordinal),
    };
}
