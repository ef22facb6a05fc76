using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>Settings of <see cref="MedianStoppingRule"/>, with Ray's defaults.</summary>
public sealed record MedianStoppingOptions : MetricSchedulerOptions
{
    public MedianStoppingOptions()
        : base(TrialResult.TimeTotalKey)
    {
    }

    /// <summary>Trials are never stopped before this much <see cref="TimeAttr"/>, and running averages start here.</summary>
    public double GracePeriod { get; init; } = 60;

    /// <summary>How many other trials must have reached the same time before a median is taken.</summary>
    public int MinSamplesRequired { get; init; } = 3;

    /// <summary>With too few samples, a trial yields its slot to waiting trials at most once per this much time.</summary>
    public double MinTimeSlice { get; init; }

    /// <summary>Stop bad trials; when false, pause them instead (they resume FIFO when nothing else waits).</summary>
    public bool HardStop { get; init; } = true;

    internal MedianStoppingOptions Validate()
    {
        ValidateTimeAttr();
        OptionChecks.NonNegative(GracePeriod, nameof(MedianStoppingOptions), nameof(GracePeriod));
        OptionChecks.AtLeast(MinSamplesRequired, 1, nameof(MedianStoppingOptions), nameof(MinSamplesRequired));
        OptionChecks.NonNegative(MinTimeSlice, nameof(MedianStoppingOptions), nameof(MinTimeSlice));
        return this;
    }
}
