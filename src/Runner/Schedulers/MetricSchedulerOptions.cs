namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// The settings every scheduler that compares trials by a metric shares (Ray's <c>metric</c>, <c>mode</c> and
/// <c>time_attr</c> arguments of ASHA, HyperBand, median stopping, PBT and PB2). It is a base record rather than a
/// nested target record so that each scheduler's options stay one flat initializer, as Ray's keyword arguments are:
/// <c>new AshaOptions { Metric = "loss", Mode = MetricMode.Min, MaxT = 10 }</c>.
/// </summary>
public abstract record MetricSchedulerOptions
{
    /// <summary>Starts with the scheduler's own default <see cref="TimeAttr"/> (Ray's differ between schedulers).</summary>
    private protected MetricSchedulerOptions(string defaultTimeAttr) => TimeAttr = defaultTimeAttr;

    /// <summary>The result field measuring a trial's progress; it must increase monotonically.</summary>
    public string TimeAttr { get; init; }

    /// <summary>The metric trials are compared by; the experiment's when null.</summary>
    public string? Metric { get; init; }

    /// <summary>Whether larger or smaller values of <see cref="Metric"/> are better; the experiment's when null.</summary>
    public MetricMode? Mode { get; init; }

    private protected void ValidateTimeAttr() => OptionChecks.NotEmpty(TimeAttr, GetType().Name, nameof(TimeAttr));
}
