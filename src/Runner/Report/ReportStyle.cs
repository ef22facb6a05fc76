using System.Globalization;
using ScottPlot;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Report;

/// <summary>
/// The look shared by every picture of a sweep report (issue 13): one size (1000 x 600 pixels), DejaVu Sans text at sizes
/// readable when the PNG is shown at its own size, the Category10 palette for series, and the helpers each picture needs to
/// read a trial's metric the same way.
/// </summary>
public static class ReportStyle
{
    public const int Width = 1000;

    public const int Height = 600;

    public const float TitleSize = 20;

    public const float LabelSize = 16;

    public const float TickSize = 13;

    public const float LegendSize = 13;

    public const string FontName = "DejaVu Sans";

    public static readonly Color Completed = Color.FromHex("#1f77b4");

    public static readonly Color Stopped = Color.FromHex("#ff7f0e");

    public static readonly Color Best = Color.FromHex("#d62728");

    public static readonly Color Failed = Color.FromHex("#7f7f7f");

    public static readonly Color Exploit = Color.FromHex("#9467bd");

    public static readonly Color Median = Color.FromHex("#8c564b");

    public static readonly Color Running = Color.FromHex("#2ca02c");

    public static readonly Color Paused = Color.FromHex("#17becf");

    private static readonly ScottPlot.Palettes.Category10 Palette = new();

    /// <summary>The <paramref name="index"/>th colour of the palette (cycling).</summary>
    public static Color Series(int index) => Palette.GetColor(index);

    /// <summary>A plot with the report's fonts and the given title and axis labels.</summary>
    public static Plot NewPlot(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        plot.Font.Set(FontName);
        plot.Title(title);
        plot.Axes.Title.Label.FontSize = TitleSize;
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        foreach (var axis in new IAxis[] { plot.Axes.Bottom, plot.Axes.Left })
        {
            axis.Label.FontSize = LabelSize;
            axis.TickLabelStyle.FontSize = TickSize;
        }
        plot.Legend.FontSize = LegendSize;
        plot.Legend.FontName = FontName;
        return plot;
    }

    /// <summary>The metric's axis label: its name and which way is better.</summary>
    public static string MetricLabel(SweepData data) =>
        data.Metric is null ? "metric" : $"{data.Metric} ({(data.Mode == MetricMode.Min ? "lower" : "higher")} is better)";

    /// <summary>The value of the sweep's metric in the trial's last result that has it; null when none has.</summary>
    public static double? FinalMetric(SweepData data, SweepTrial trial)
    {
        if (data.Metric is not { } metric) return null;
        for (int i = trial.Results.Count - 1; i >= 0; i--)
            if (trial.Results[i].TryGetDouble(metric, out var v) && double.IsFinite(v)) return v;
        return null;
    }

    /// <summary>The value of the sweep's metric in one result, when finite.</summary>
    public static double? MetricOf(SweepData data, TrialResult result) =>
        data.Metric is { } metric && result.TryGetDouble(metric, out var v) && double.IsFinite(v) ? v : null;

    /// <summary>True when <paramref name="a"/> is better than <paramref name="b"/> for the sweep's mode (max unless min).</summary>
    public static bool Better(SweepData data, double a, double b) => data.Mode == MetricMode.Min ? a < b : a > b;

    /// <summary>The picture as PNG bytes at the report's size.</summary>
    public static byte[] Png(Plot plot, int width = Width, int height = Height) => plot.GetImageBytes(width, height, ImageFormat.Png);

    /// <summary>A short scheduler name for legends: AshaScheduler -> ASHA, HyperBandScheduler -> HyperBand, ...</summary>
    public static string ShortSource(string source) => source switch
    {
        "AshaScheduler" => "ASHA",
        "HyperBandScheduler" => "HyperBand",
        "HyperBandForBohb" => "BOHB",
        "MedianStoppingRule" => "median rule",
        _ => source,
    };

    /// <summary>Number formatting for tick labels and tables.</summary>
    public static string Format(double value) => value.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>
    /// Makes the axis logarithmic for values plotted as their log10: ticks at powers of ten (with minor ticks) when the
    /// range spans decades, otherwise at round values labelled in the original units.
    /// </summary>
    public static void LogAxis(IAxis axis, double low, double high)
    {
        bool decades = high > 0 && low > 0 && Math.Log10(high) - Math.Log10(low) >= 2;
        axis.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = v => Format(Math.Pow(10, v)),
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = decades,
        };
    }

    /// <summary>The unit of <paramref name="seconds"/> for a time axis, and the divisor that converts seconds to it.</summary>
    public static (string Unit, double Divisor) TimeUnit(double seconds) =>
        seconds >= 7200 ? ("h", 3600) : seconds >= 180 ? ("min", 60) : ("s", 1);
}
