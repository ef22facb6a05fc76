using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>From <paramref name="FromIteration"/> on (until the next step), the trial trained with <paramref name="Value"/>.</summary>
public sealed record ScheduleStep(long FromIteration, object? Value);

/// <summary>
/// Picture 7 of issue 13, the schedules of a PBT or PB2 sweep: for one hyperparameter that an exploit changed, each
/// trial's value against training_iteration as a step line (log axis for log domains), with the exploits marked. A
/// trial's schedule is rebuilt from the store's exploits (<see cref="Schedule"/>), since its params hold only its last config.
/// </summary>
public static class SchedulePlot
{
    /// <summary>The hyperparameters that some exploit changed: the search space's first, in its order, then the others.</summary>
    public static IReadOnlyList<string> ChangedParams(SweepData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var changed = new List<string>();
        foreach (var x in data.Exploits)
        {
            foreach (var (key, value) in x.NewParams)
            {
                if (!changed.Contains(key) && (!x.OldParams.TryGetValue(key, out var old) || !Same(old, value))) changed.Add(key);
            }
        }
        var order = data.Domains.Select(d => d.Name).ToList();
        return changed.OrderBy(k => order.IndexOf(k) is var i and >= 0 ? i : order.Count).ToList();
    }

    /// <summary>
    /// The values <paramref name="trial"/> trained with for <paramref name="param"/>: from iteration 0 the value before its
    /// first exploit (its params when it was never exploited), then each exploit's new value from the exploit's iteration
    /// on (<see cref="SweepExploit.Iteration"/> is where the recipient goes on from, see <see cref="LineagePlot"/>). An exploit
    /// rolls the trial back to its iteration, so steps from there on that an earlier exploit made are dropped. Empty when the
    /// trial never had the param.
    /// </summary>
    public static IReadOnlyList<ScheduleStep> Schedule(SweepData data, SweepTrial trial, string param)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(trial);
        var exploits = data.Exploits.Where(x => x.TrialId == trial.Id).ToList();
        var steps = new List<ScheduleStep>();
        if (exploits.Count > 0 && exploits[0].OldParams.TryGetValue(param, out var initial)) steps.Add(new(0, initial));
        else if (trial.Params.TryGetValue(param, out var current)) steps.Add(new(0, current));
        foreach (var x in exploits)
        {
            if (!x.NewParams.TryGetValue(param, out var value)) continue;
            steps.RemoveAll(s => s.FromIteration >= x.Iteration);
            steps.Add(new(x.Iteration, value));
        }
        return steps;
    }

    /// <summary>The schedules of <paramref name="param"/>; null when no exploit changed it.</summary>
    public static Plot? Draw(SweepData data, string param)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!ChangedParams(data).Contains(param)) return null;
        var schedules = data.Trials.Select((t, i) => (Trial: t, Index: i, Steps: Schedule(data, t, param))).Where(s => s.Steps.Count > 0).ToList();
        if (schedules.Count == 0) return null;

        var domain = data.Domains.FirstOrDefault(d => d.Name == param);
        var values = schedules.SelectMany(s => s.Steps.Select(p => p.Value)).ToList();
        var numbers = values.Select(v => ParamValues.TryNumber(v, out var n) ? n : double.NaN).ToList();
        bool categorical = domain?.Kind == ParamKind.Categorical || values.Any(v => v is string or bool) || numbers.Any(double.IsNaN);
        bool log = !categorical && domain?.Log == true && numbers.All(n => n > 0);
        var categories = new List<object?>();
        if (categorical)
        {
            foreach (var c in (domain?.Categories ?? []).Concat(values))
                if (!categories.Any(k => Same(k, c))) categories.Add(c);
        }
        double Y(object? value) => categorical ? categories.FindIndex(k => Same(k, value))
            : ParamValues.TryNumber(value, out var n) ? log ? Math.Log10(n) : n : double.NaN;

        var scale = categorical ? "categories" : log ? "log scale" : "linear scale";
        var plot = ReportStyle.NewPlot(
            $"Schedule: {param} of {schedules.Count} trials by iteration ({LineagePlot.SchedulerName(data)})",
            "training_iteration (iterations)", $"{param} ({scale})");
        bool legend = schedules.Count <= 12;
        foreach (var (trial, index, steps) in schedules)
        {
            long last = Math.Max(trial.Results.Count == 0 ? 0 : trial.Results.Max(r => r.TrainingIteration), steps[^1].FromIteration);
            var xs = steps.Select(s => (double)s.FromIteration).Append(last).ToArray();
            var ys = steps.Select(s => Y(s.Value)).Append(Y(steps[^1].Value)).ToArray();
            var line = plot.Add.Scatter(xs, ys, ReportStyle.Series(index));
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.LineWidth = 2.5f;
            line.MarkerSize = 0;
            if (legend) line.LegendText = trial.Id;
        }

        var marks = data.Exploits.Where(x => schedules.Any(s => s.Trial.Id == x.TrialId) && x.NewParams.ContainsKey(param)).ToList();
        if (marks.Count > 0)
        {
            var markers = plot.Add.Markers(marks.Select(x => (double)x.Iteration).ToArray(), marks.Select(x => Y(x.NewParams[param])).ToArray(),
                MarkerShape.FilledDiamond, 10, ReportStyle.Exploit);
            markers.LegendText = $"exploit: the trial's new value ({marks.Count})";
        }

        if (categorical)
        {
            plot.Axes.Left.SetTicks(Enumerable.Range(0, categories.Count).Select(i => (double)i).ToArray(),
                categories.Select(c => Trainables.TrialConfig.Format(c)).ToArray());
            plot.Axes.SetLimitsY(-0.5, categories.Count - 0.5);
        }
        else if (log)
        {
            ReportStyle.LogAxis(plot.Axes.Left, domain!.Low > 0 ? Math.Min(domain.Low, numbers.Min()) : numbers.Min(), Math.Max(domain.High, numbers.Max()));
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    private static bool Same(object? a, object? b) =>
        ParamValues.TryNumber(a, out var x) && ParamValues.TryNumber(b, out var y) && a is not string && b is not string ? x == y
        : string.Equals(ParamValues.Key(a), ParamValues.Key(b), StringComparison.Ordinal);
}
