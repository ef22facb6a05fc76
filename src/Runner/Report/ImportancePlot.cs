using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 5 of issue 13: each hyperparameter's importance for the metric as a horizontal bar chart, computed by
/// <see cref="ParameterImportance.Fanova(SweepData, int)"/> (Optuna's _fanova variant) and named on the picture.
/// </summary>
public static class ImportancePlot
{
    /// <summary>The chart, or null when the sweep has no metric, fewer than two scored trials or no varying param.</summary>
    public static Plot? Draw(SweepData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var importances = ParameterImportance.Fanova(data);
        if (importances.Count == 0) return null;
        var plot = new Plot();
        var bars = new List<Bar>();
        var positions = new double[importances.Count];
        var labels = new string[importances.Count];
        for (int i = 0; i < importances.Count; i++)
        {
            // The most important param on top.
            positions[i] = importances.Count - 1 - i;
            labels[i] = importances[i].Param;
            bars.Add(new Bar
            {
                Position = positions[i],
                Value = importances[i].Importance,
                Label = importances[i].Importance.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture),
                FillColor = Colors.SteelBlue,
            });
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        barPlot.ValueLabelStyle.FontSize = 14;
        plot.Axes.Left.SetTicks(positions, labels);
        plot.Axes.Left.MajorTickStyle.Length = 0;
        plot.Axes.Margins(left: 0, right: 0.15);
        plot.Axes.SetLimitsX(0, Math.Max(0.05, importances.Max(p => p.Importance)) * 1.15);
        plot.Title($"Hyperparameter importance for {data.Metric}: {ParameterImportance.Method}");
        plot.XLabel("importance (share of the metric's variance, sums to 1)");
        plot.YLabel("hyperparameter");
        return plot;
    }
}
