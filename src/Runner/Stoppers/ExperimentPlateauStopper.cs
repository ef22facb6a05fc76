using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>
/// Ray's ExperimentPlateauStopper: keeps the <c>top</c> best values of <c>metric</c> over every result of every trial;
/// when there are <c>top</c> of them and their population standard deviation is at most <c>std</c>, the experiment has
/// plateaued. Once it has stayed plateaued for <c>patience</c> further results, the whole experiment stops (and the
/// trial whose result tipped it stops at once, as Ray returns stop_all() from __call__).
/// </summary>
public sealed class ExperimentPlateauStopper : IStopper
{
    private readonly List<double> _top = new();
    private int _iterations;

    public ExperimentPlateauStopper(string metric, double std = 0.001, int top = 10, MetricMode mode = MetricMode.Min, int patience = 0)
    {
        Metric = OptionChecks.NotEmpty(metric, nameof(ExperimentPlateauStopper), nameof(metric));
        Std = OptionChecks.Positive(std, nameof(ExperimentPlateauStopper), nameof(std));
        Top = OptionChecks.AtLeast(top, 2, nameof(ExperimentPlateauStopper), nameof(top));
        Patience = OptionChecks.AtLeast(patience, 0, nameof(ExperimentPlateauStopper), nameof(patience));
        if (!Enum.IsDefined(mode)) throw OptionChecks.Fail(nameof(ExperimentPlateauStopper), nameof(mode), n => $"{n(nameof(mode))} must be min or max, got {mode}");
        Mode = mode;
    }

    public string Metric { get; }

    public double Std { get; }

    public int Top { get; }

    public MetricMode Mode { get; }

    public int Patience { get; }

    /// <summary>The best values seen so far, ascending.</summary>
    public IReadOnlyList<double> TopValues => _top;

    public bool ShouldStopTrial(string trialId, TrialResult result)
    {
        _top.Add(result.GetDouble(Metric));
        _top.Sort();
        if (_top.Count > Top)
        {
            if (Mode == MetricMode.Min) _top.RemoveRange(Top, _top.Count - Top);
            else _top.RemoveRange(0, _top.Count - Top);
        }
        _iterations = HasPlateaued() ? _iterations + 1 : 0;
        return ShouldStopAll();
    }

    public bool ShouldStopAll() => HasPlateaued() && _iterations >= Patience;

    private bool HasPlateaued() => _top.Count == Top && TrialPlateauStopper.PopulationStd(_top) <= Std;
}
