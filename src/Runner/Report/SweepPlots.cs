using ScottPlot;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Store;

namespace TorchTrials.Runner.Report;

/// <summary>
/// The pictures of a sweep from the library (<c>grid.Plots.History()</c>), the same as <c>torchtrials report</c> draws,
/// each as a <see cref="PlotImage"/>. Reads the experiment's store once, on first use; a grid whose run kept no store is
/// drawn from the grid's last results.
/// </summary>
public sealed class SweepPlots
{
    private readonly Func<SweepData> _load;
    private SweepData? _data;

    public SweepPlots(SweepData data) : this(() => data) { }

    private SweepPlots(Func<SweepData> load) => _load = load;

    internal static SweepPlots Of(ResultGrid grid) => new(() => SqliteExperimentStore.Exists(grid.ExperimentPath) ? SweepData.Load(grid.ExperimentPath) : FromGrid(grid));

    /// <summary>What the pictures are drawn from.</summary>
    public SweepData Data => _data ??= _load();

    public int Width { get; init; } = ReportStyle.Width;

    public int Height { get; init; } = ReportStyle.Height;

    /// <summary>Picture 1: final metric and best so far by trial order.</summary>
    public PlotImage History() => Render("optimisation history", HistoryPlot.Draw);

    /// <summary>Picture 1: final metric and best so far over wall time.</summary>
    public PlotImage HistoryOverTime() => Render("optimisation history over time", HistoryPlot.DrawOverTime);

    /// <summary>Picture 2: every trial's learning curve with the schedulers' decisions.</summary>
    public PlotImage LearningCurves() => Render("learning curves", LearningCurvesPlot.Draw);

    /// <summary>Picture 3: parallel coordinates of the hyperparameters coloured by the metric.</summary>
    public PlotImage ParallelCoordinates() => Render("parallel coordinates", ParallelCoordinatesPlot.Draw);

    /// <summary>Picture 5: parameter importance (<see cref="ParameterImportance.Method"/>).</summary>
    public PlotImage Importance() => Render("parameter importance", ImportancePlot.Draw);

    /// <summary>Picture 6: the timeline of trials per slot and fused lane over wall time.</summary>
    public PlotImage Timeline() => Render("timeline", TimelinePlot.Draw, "no trial ever ran");

    /// <summary>Picture 4: the slice of one hyperparameter.</summary>
    public PlotImage Slice(string param)
    {
        var domain = Data.Domains.FirstOrDefault(d => d.Name == param)
            ?? throw new ArgumentException($"no hyperparameter '{param}' in the sweep (it has {string.Join(", ", Data.Domains.Select(d => d.Name))})", nameof(param));
        return Render($"slice of {param}", d => SlicePlot.Draw(d, domain));
    }

    /// <summary>Picture 4: one slice per hyperparameter, in the search space's order.</summary>
    public IReadOnlyList<PlotImage> Slices() => Data.Domains.Select(d => Slice(d.Name)).ToList();

    /// <summary>Picture 7: the PBT/PB2 lineage, who exploited whom and when.</summary>
    public PlotImage Lineage() => Render("lineage", LineagePlot.Draw, "the store holds no PBT or PB2 exploit");

    /// <summary>Picture 7: each trial's schedule of one hyperparameter that an exploit changed.</summary>
    public PlotImage Schedule(string param)
    {
        var changed = SchedulePlot.ChangedParams(Data);
        if (!changed.Contains(param) && !Data.Domains.Any(d => d.Name == param))
            throw new ArgumentException($"no hyperparameter '{param}' in the sweep (it has {string.Join(", ", Data.Domains.Select(d => d.Name).Union(changed))})", nameof(param));
        return Render($"schedule of {param}", d => SchedulePlot.Draw(d, param), $"no PBT or PB2 exploit changed '{param}'");
    }

    /// <summary>Picture 7: one schedule per hyperparameter that an exploit changed (none without exploits).</summary>
    public IReadOnlyList<PlotImage> Schedules() => SchedulePlot.ChangedParams(Data).Select(Schedule).ToList();

    /// <summary>Any report picture by its <see cref="ReportPicture.FileName"/> (as <see cref="SweepReport.Pictures"/> lists them).</summary>
    public PlotImage Picture(string fileName)
    {
        var picture = SweepReport.Pictures(Data).FirstOrDefault(p => p.FileName == fileName)
            ?? throw new ArgumentException($"no picture '{fileName}' (there are {string.Join(", ", SweepReport.Pictures(Data).Select(p => p.FileName))})", nameof(fileName));
        return Render(picture.Title, picture.Draw);
    }

    /// <summary>Draws one picture; throws naming why when it does not apply to this sweep.</summary>
    public PlotImage Render(string title, Func<SweepData, Plot?> draw) => Render(title, draw, null);

    private PlotImage Render(string title, Func<SweepData, Plot?> draw, string? whyNot)
    {
        var plot = draw(Data) ?? throw new InvalidOperationException(
            $"no {title} for this sweep: {whyNot ?? (Data.Metric is null ? "it has no metric" : $"no trial reported '{Data.Metric}'")}");
        return new PlotImage(ReportStyle.Png(plot, Width, Height), Width, Height, title);
    }

    /// <summary>A live grid without a store: each trial's last result is its history.</summary>
    private static SweepData FromGrid(ResultGrid grid)
    {
        var trials = grid.Select((t, i) => new SweepTrial(t.TrialId, i, t.Status, SweepData.Flatten(t.Config),
            t.LastResult is { } r ? new[] { r } : [], [])
        {
            StoppedBy = t.StoppedBy,
            Lane = t.Lane,
            Error = t.Error,
        }).ToList();
        return new SweepData
        {
            Directory = grid.ExperimentPath,
            Metric = grid.Metric,
            Mode = grid.Mode,
            Trials = trials,
            Domains = ParamDomains.Infer(trials.Select(t => t.Params)),
        };
    }
}
