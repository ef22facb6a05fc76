using System.Globalization;
using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 3 of issue 13: parallel coordinates of the hyperparameters coloured by the metric, in the manner of Optuna's
/// plot_parallel_coordinate, built from ScottPlot lines and text (it has no native type): one vertical axis per
/// hyperparameter plus one for the metric (each trial's last reported value), each axis ticked in its param's own units
/// (log domains by decades, categoricals by category), each trial a thin translucent polyline coloured through Viridis by
/// its metric with a colorbar, the best trials drawn last so they lie on top.
/// </summary>
public static class ParallelCoordinatesPlot
{
    /// <summary>The picture, or null when no trial reported the metric or the sweep has no params.</summary>
    public static Plot? Draw(SweepData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Metric is null) return null;
        var scored = new List<(SweepTrial Trial, double Value)>();
        foreach (var trial in data.Trials)
        {
            double? last = null;
            foreach (var result in trial.Results)
                if (ParamValues.TryNumber(result[data.Metric], out var v) && double.IsFinite(v)) last = v;
            if (last is double value) scored.Add((trial, value));
        }
        var domains = ParamValues.Domains(data).Where(d => scored.Any(t => t.Trial.Params.ContainsKey(d.Name))).ToList();
        if (scored.Count == 0 || domains.Count == 0) return null;

        var axes = domains.Select(d => Axis.For(d, scored.Select(t => t.Trial.Params.GetValueOrDefault(d.Name)))).ToList();
        double mLo = scored.Min(t => t.Value), mHi = scored.Max(t => t.Value);
        var metricAxis = Axis.Linear(data.Metric, mLo, mHi);
        axes.Add(metricAxis);

        bool lowIsBest = data.Mode != MetricMode.Max;
        // Worst first, best last: the best lines end up on top.
        var order = lowIsBest ? scored.OrderByDescending(t => t.Value) : scored.OrderBy(t => t.Value);
        var colormap = new ScottPlot.Colormaps.Viridis();
        double alpha = scored.Count > 200 ? 0.25 : scored.Count > 50 ? 0.5 : 0.8;
        double width = scored.Count > 200 ? 1 : 1.5;
        var plot = new Plot();
        var xs = Enumerable.Range(0, axes.Count).Select(i => (double)i).ToArray();
        foreach (var (trial, value) in order)
        {
            var ys = new double[axes.Count];
            for (int i = 0; i < domains.Count; i++)
                ys[i] = trial.Params.TryGetValue(domains[i].Name, out var p) ? axes[i].Position(p) : double.NaN;
            ys[^1] = metricAxis.Position(value);
            double fraction = mHi > mLo ? (value - mLo) / (mHi - mLo) : 0.5;
            var line = plot.Add.ScatterLine(xs, ys);
            line.LineWidth = (float)width;
            line.Color = colormap.GetColor(fraction).WithAlpha(alpha);
            line.MarkerSize = 0;
        }

        for (int i = 0; i < axes.Count; i++)
        {
            var vertical = plot.Add.VerticalLine(i);
            vertical.Color = Colors.Black;
            vertical.LineWidth = 1.5f;
            var name = plot.Add.Text(axes[i].Name + (axes[i].LogScale ? " (log)" : ""), i, 1.04);
            name.LabelAlignment = Alignment.LowerCenter;
            name.LabelFontSize = 13;
            name.LabelBold = true;
            foreach (var (position, label) in axes[i].Ticks)
            {
                var tick = plot.Add.Text(label, i, position);
                tick.LabelAlignment = Alignment.MiddleLeft;
                tick.LabelFontSize = 11;
                tick.LabelBackgroundColor = Colors.White.WithAlpha(0.7);
                tick.OffsetX = 3;
            }
        }

        var colorbar = plot.Add.ColorBar(new MetricColors(colormap, new ScottPlot.Range(mLo, mHi > mLo ? mHi : mLo + 1)));
        colorbar.Label = data.Metric;
        plot.Title($"Parallel coordinates of {scored.Count} trials, coloured by {data.Metric}" +
            (data.Mode is null ? "" : $" (best = {(lowIsBest ? "lowest" : "highest")}, drawn on top)"));
        plot.Axes.SetLimits(-0.2, axes.Count - 0.4, -0.05, 1.12);
        plot.Axes.Left.IsVisible = false;
        plot.Axes.Bottom.IsVisible = false;
        plot.Axes.Top.IsVisible = false;
        plot.Axes.Right.IsVisible = false;
        plot.HideGrid();
        return plot;
    }

    /// <summary>The colorbar's source: the metric range through the lines' colormap.</summary>
    private sealed class MetricColors(IColormap colormap, ScottPlot.Range range) : IHasColorAxis
    {
        public IColormap Colormap { get; set; } = colormap;

        public ScottPlot.Range GetRange() => range;
    }

    /// <summary>One vertical axis: maps a value to [0, 1] and lists its ticks in the param's units.</summary>
    private sealed class Axis
    {
        private Func<object?, double> _position = _ => double.NaN;

        public string Name { get; private init; } = "";

        public bool LogScale { get; private init; }

        public List<(double Position, string Label)> Ticks { get; } = [];

        public double Position(object? value) => _position(value);

        public static Axis For(ParamDomain domain, IEnumerable<object?> values)
        {
            var list = values.ToList();
            if (domain.Kind == ParamKind.Categorical)
            {
                var categories = domain.Categories.Count > 0 ? domain.Categories.Select(ParamValues.Key).ToList()
                    : list.Select(ParamValues.Key).Distinct().ToList();
                foreach (var key in list.Select(ParamValues.Key).Distinct())
                    if (!categories.Contains(key)) categories.Add(key);
                var axis = new Axis { Name = domain.Name };
                double Pos(int i) => categories.Count == 1 ? 0.5 : (double)i / (categories.Count - 1);
                axis._position = v => Pos(categories.IndexOf(ParamValues.Key(v)));
                for (int i = 0; i < categories.Count; i++) axis.Ticks.Add((Pos(i), categories[i]));
                return axis;
            }
            var numbers = list.Select(v => ParamValues.TryNumber(v, out var n) ? n : double.NaN).Where(double.IsFinite).ToList();
            double lo = domain.Low < domain.High ? domain.Low : numbers.DefaultIfEmpty(0).Min();
            double hi = domain.Low < domain.High ? domain.High : numbers.DefaultIfEmpty(1).Max();
            if (numbers.Count > 0)
            {
                lo = Math.Min(lo, numbers.Min());
                hi = Math.Max(hi, numbers.Max());
            }
            if (domain.Log && lo > 0) return LogAxis(domain.Name, lo, hi);
            var linear = Linear(domain.Name, lo, hi);
            if (domain.Kind == ParamKind.Integer && hi - lo <= 10 && hi > lo)
            {
                linear.Ticks.Clear();
                for (long k = (long)Math.Ceiling(lo); k <= hi; k++) linear.Ticks.Add(((k - lo) / (hi - lo), k.ToString(CultureInfo.InvariantCulture)));
            }
            return linear;
        }

        public static Axis Linear(string name, double lo, double hi)
        {
            var axis = new Axis { Name = name };
            if (!(hi > lo))
            {
                axis._position = _ => 0.5;
                axis.Ticks.Add((0.5, Format(lo)));
                return axis;
            }
            axis._position = v => ParamValues.TryNumber(v, out var n) ? (n - lo) / (hi - lo) : double.NaN;
            for (int i = 0; i <= 4; i++) axis.Ticks.Add((i / 4.0, Format(lo + (hi - lo) * i / 4)));
            return axis;
        }

        private static Axis LogAxis(string name, double lo, double hi)
        {
            double a = Math.Log10(lo), b = Math.Log10(hi);
            var axis = new Axis { Name = name, LogScale = true };
            if (!(b > a))
            {
                axis._position = _ => 0.5;
                axis.Ticks.Add((0.5, Format(lo)));
                return axis;
            }
            axis._position = v => ParamValues.TryNumber(v, out var n) && n > 0 ? (Math.Log10(n) - a) / (b - a) : double.NaN;
            var decades = Enumerable.Range((int)Math.Ceiling(a - 1e-9), Math.Max(0, (int)Math.Floor(b + 1e-9) - (int)Math.Ceiling(a - 1e-9) + 1)).ToList();
            if (decades.Count < 2)
            {
                axis.Ticks.Add((0, Format(lo)));
                axis.Ticks.Add((1, Format(hi)));
            }
            foreach (var k in decades) axis.Ticks.Add(((k - a) / (b - a), Format(Math.Pow(10, k))));
            return axis;
        }

        private static string Format(double v) => v.ToString("G3", CultureInfo.InvariantCulture);
    }
}
